# coding=utf-8

"""
{{name}}: the machine's uptime and idle time from /proc/uptime, in seconds
(or in minutes with `minutes = true`). A Diamond-style collector, run by
wdiamond's sandboxed Python runtime.

Grants: files = ["/proc/uptime"]
"""

import diamond.collector
from diamond.collector import str_to_bool

PROC_UPTIME = '/proc/uptime'


def parse_uptime(text):
    """(uptime, idle) in seconds, from the text of /proc/uptime."""
    fields = text.split()
    if len(fields) < 2:
        raise ValueError('%s: expected two numbers, got %r' % (PROC_UPTIME, text))
    return float(fields[0]), float(fields[1])


class {{class}}Collector(diamond.collector.Collector):

    # What `wdiamond inspect` shows it asks for; the operator grants it.
    WDIAMOND_CAPABILITIES = [('read-files', PROC_UPTIME)]

    def get_default_config_help(self):
        config_help = super({{class}}Collector, self).get_default_config_help()
        config_help.update({
            'minutes': 'Publish minutes instead of seconds',
        })
        return config_help

    def get_default_config(self):
        config = super({{class}}Collector, self).get_default_config()
        config.update({
            'path': '{{name}}',
            'minutes': False,
        })
        return config

    def collect(self):
        with open(PROC_UPTIME) as f:
            uptime, idle = parse_uptime(f.read())
        if str_to_bool(self.config['minutes']):
            uptime, idle = uptime / 60, idle / 60
        self.publish_gauge('uptime', uptime, 2)
        self.publish_gauge('idle', idle, 2)
