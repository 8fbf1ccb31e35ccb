# coding=utf-8

"""
Load averages (1, 5 and 15 minutes, also per CPU) and the running and total
process counts, from /proc/loadavg: Diamond's LoadAverageCollector written
for wdiamond's Python runtime, in Diamond's style.

Grants: files = ["/proc/loadavg"]
"""

import multiprocessing
import os
import re

import diamond.collector
from diamond.collector import str_to_bool


class LoadAverageCollector(diamond.collector.Collector):

    PROC_LOADAVG = '/proc/loadavg'
    # running/total scheduling entities, the fourth field
    PROCESSES = re.compile(r'([\d.]+) ([\d.]+) ([\d.]+) (\d+)/(\d+)')

    WDIAMOND_CAPABILITIES = [('read-files', '/proc/loadavg')]

    def get_default_config_help(self):
        config_help = super(LoadAverageCollector, self).get_default_config_help()
        config_help.update({
            'simple': 'Only collect the 1 minute load average',
        })
        return config_help

    def get_default_config(self):
        config = super(LoadAverageCollector, self).get_default_config()
        config.update({
            'path': 'loadavg',
            'simple': 'False',
        })
        return config

    def collect(self):
        one, five, fifteen = os.getloadavg()
        cpus = multiprocessing.cpu_count()

        if str_to_bool(self.config['simple']):
            self.publish_gauge('load', one, 2)
            self.publish_gauge('load_normalized', one / cpus, 2)
        else:
            for name, value in (('01', one), ('05', five), ('15', fifteen)):
                self.publish_gauge(name, value, 2)
            for name, value in (('01', one), ('05', five), ('15', fifteen)):
                self.publish_gauge(name + '_normalized', value / cpus, 2)

        if os.access(self.PROC_LOADAVG, os.R_OK):
            with open(self.PROC_LOADAVG) as f:
                for line in f:
                    m = self.PROCESSES.match(line)
                    if m:
                        self.publish_gauge('processes_running', int(m.group(4)))
                        self.publish_gauge('processes_total', int(m.group(5)))
