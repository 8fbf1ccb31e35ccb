"""``diamond.metric``: Diamond's ``Metric``, for collectors that build one
and hand it to ``publish_metric``."""

import time

from .error import DiamondException


class Metric(object):
    """A metric with its full path (Diamond's constructor and accessors)."""

    __slots__ = ('path', 'value', 'raw_value', 'timestamp', 'precision',
                 'host', 'metric_type', 'ttl')

    def __init__(self, path, value, raw_value=None, timestamp=None, precision=0,
                 host=None, metric_type='COUNTER', ttl=None):
        if path is None or value is None or metric_type not in ('COUNTER', 'GAUGE'):
            raise DiamondException('Invalid parameter when creating new Metric with path: '
                                   '%r value: %r metric_type: %r' % (path, value, metric_type))
        if timestamp is None:
            timestamp = int(time.time())
        elif not isinstance(timestamp, int):
            try:
                timestamp = int(timestamp)
            except ValueError as e:
                raise DiamondException('Invalid timestamp when creating new Metric %r: %s'
                                       % (path, e))
        if not isinstance(value, (int, float)):
            try:
                value = round(float(value)) if precision == 0 else float(value)
            except ValueError as e:
                raise DiamondException('Invalid value when creating new Metric %r: %s'
                                       % (path, e))
        self.path = path
        self.value = value
        self.raw_value = raw_value
        self.timestamp = timestamp
        self.precision = precision
        self.host = host
        self.metric_type = metric_type
        self.ttl = ttl

    def __repr__(self):
        return '%s %.*f %d\n' % (self.path, self.precision, float(self.value), self.timestamp)

    def getPathPrefix(self):
        """The path's first segment (``servers``)."""
        return self.path.split('.')[0]

    def getCollectorPath(self):
        """The collector's segment of the path (after prefix and host)."""
        parts = self.path.split('.')
        return parts[2] if len(parts) > 2 else ''

    def getMetricPath(self):
        """The path after the collector's segment."""
        return '.'.join(self.path.split('.')[3:])
