# coding=utf-8

"""
Ceph daemons' perf counters, from `ceph --admin-daemon SOCKET perf dump` for
each admin socket: Diamond's CephCollector written for wdiamond's Python
runtime, in Diamond's style (a command collector).

Grants: files = ["/var/run/ceph/**"], commands = ["/usr/bin/ceph"]
"""

import glob
import json
import os
import subprocess

import diamond.collector


def flatten(tree, sep='.', prefix=None):
    """(dotted.name, value) pairs of a nested dict, in sorted key order."""
    for key, value in sorted(tree.items()):
        name = sep.join(p for p in (prefix, key) if p)
        if isinstance(value, dict):
            for pair in flatten(value, sep, name):
                yield pair
        else:
            yield name, value


class CephCollector(diamond.collector.Collector):

    WDIAMOND_CAPABILITIES = [
        ('read-files', '{socket_path}/**'),
        ('run-command', '{ceph_binary}'),
    ]

    def get_default_config_help(self):
        config_help = super(CephCollector, self).get_default_config_help()
        config_help.update({
            'socket_path': 'The location of the ceph monitoring sockets.',
            'socket_prefix': 'The first part of all socket names.',
            'socket_ext': 'Extension for socket filenames.',
            'ceph_binary': 'Path to "ceph" executable.',
            'timeout': 'Seconds one `perf dump` may take before it is killed',
        })
        return config_help

    def get_default_config(self):
        config = super(CephCollector, self).get_default_config()
        config.update({
            'path': 'ceph',
            'socket_path': '/var/run/ceph',
            'socket_prefix': 'ceph-',
            'socket_ext': 'asok',
            'ceph_binary': '/usr/bin/ceph',
            'timeout': 10,
        })
        return config

    def sockets(self):
        pattern = '%s*.%s' % (self.config['socket_prefix'], self.config['socket_ext'])
        return sorted(glob.glob(os.path.join(self.config['socket_path'], pattern)))

    def counter_prefix(self, socket):
        base = os.path.splitext(os.path.basename(socket))[0]
        if base.startswith(self.config['socket_prefix']):
            base = base[len(self.config['socket_prefix']):]
        return 'ceph.' + base

    def perf_dump(self, socket):
        try:
            out = subprocess.check_output(
                [self.config['ceph_binary'], '--admin-daemon', socket, 'perf', 'dump'],
                timeout=float(self.config.get('timeout', 10)))
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            self.log.info('Could not get stats from %s: %s', socket, e)
            return {}
        try:
            return json.loads(out)
        except ValueError as e:
            self.log.info('Could not parse stats from %s: %s', socket, e)
            return {}

    def collect(self):
        for socket in self.sockets():
            self.log.debug('checking %s', socket)
            prefix = self.counter_prefix(socket)
            for name, value in flatten(self.perf_dump(socket), prefix=prefix):
                # Numbers (and booleans) only: a text counter is skipped.
                if isinstance(value, (int, float)):
                    self.publish_gauge(name, value)
