# coding=utf-8

"""
Memory use from /proc/meminfo, in the `byte_unit` asked for, and the
percentage in use: Diamond's MemoryCollector written for wdiamond's Python
runtime, in Diamond's style.

Grants: files = ["/proc/meminfo"]
"""

import os
from decimal import Decimal

import diamond.collector
import diamond.convertor

# The /proc/meminfo fields published unless `detailed` is set.
STANDARD = (
    'MemTotal', 'MemFree', 'MemAvailable', 'Buffers', 'Cached', 'Active',
    'Dirty', 'Inactive', 'Shmem', 'SwapTotal', 'SwapFree', 'SwapCached',
    'VmallocTotal', 'VmallocUsed', 'VmallocChunk', 'Committed_AS',
)


class MemoryCollector(diamond.collector.Collector):

    PROC = '/proc/meminfo'

    WDIAMOND_CAPABILITIES = [('read-files', '/proc/meminfo')]

    def get_default_config_help(self):
        config_help = super(MemoryCollector, self).get_default_config_help()
        config_help.update({
            'detailed': 'Set to True to Collect all the nodes',
        })
        return config_help

    def get_default_config(self):
        config = super(MemoryCollector, self).get_default_config()
        config.update({
            'path': 'memory',
            'force_psutil': 'False',
        })
        return config

    def collect(self):
        if not os.access(self.PROC, os.R_OK):
            self.log.error('%s is not readable; no memory metrics', self.PROC)
            return None
        with open(self.PROC) as f:
            text = f.read()

        total = available = None
        for line in text.splitlines():
            try:
                name, value, units = line.split()
                name = name.rstrip(':')
                value = int(value)
            except ValueError:
                continue
            if name not in STANDARD and 'detailed' not in self.config:
                continue
            # Diamond tests these with `in` on a string, so 'MemTotal' also
            # matches a prefix of it; kept as Diamond does it.
            if name in 'MemTotal':
                total = value
            elif name in 'MemAvailable':
                available = value
            for unit in self.config['byte_unit']:
                value = diamond.convertor.binary.convert(
                    value=value, oldUnit=units, newUnit=unit)
                self.publish(name, value, metric_type='GAUGE')
                break  # Diamond publishes the first unit only

        if total is not None and available is not None:
            used = total - available
            percent = Decimal(str(100.0 * used / total))
            self.publish('MemUsedPercentage', round(percent, 2), metric_type='GAUGE')
        return True
