"""Diamond's ``diamond.collector`` API: the :class:`Collector` base class a
collector script subclasses, and ``str_to_bool``.

Semantics follow Diamond's: the configuration is the class's defaults
overlaid by the operator's keys (``self.config``, a dict); ``publish`` takes
a name relative to the collector's path (the host builds the full path,
``servers.<host>.<path>.<name>``, and applies ``metrics_whitelist``,
``path_suffix`` and the rest); ``derivative`` keeps the previous sample of
every counter and returns Diamond's rate (the SDK's Rust ``derivative``
gives the same values). Nothing here touches the host: the runtime reads
``published`` after each ``collect``.
"""

import logging
import os
from decimal import Decimal

# The keys the agent itself owns (its `[collectors.NAME]` host keys); they
# are not options of the script, but `self.config` has them all.
HOST_KEYS = frozenset([
    'enabled', 'interval', 'path', 'path_prefix', 'path_suffix',
    'instance_prefix', 'hostname', 'hostname_method', 'metrics_whitelist',
    'metrics_blacklist', 'byte_unit', 'measure_collector_time',
    'ttl_multiplier', 'stagger_collection', 'splay', 'method',
    'publish_first_rate',
])


class _FirstSample(float):
    """Diamond's 0 for a counter's first sample: ``publish`` leaves it
    out (it is not a measurement) unless ``publish_first_rate`` is true.
    Arithmetic on it gives a plain float."""

# Largest precision the wire format takes.
MAX_PRECISION = 255

# Diamond's largest counter value (`derivative`'s default wrap for 64-bit
# counters, as Diamond's collectors pass it).
MAX_COUNTER = (2 ** 64) - 1


def get_hostname(config, method=None):
    """Diamond's module-level ``get_hostname``: the host name the agent
    resolved (the agent applies ``hostname``/``hostname_method``)."""
    return config.get('hostname') or ''


def str_to_bool(value):
    """Diamond's truth values: ``true, t, yes, y`` and ``false, f, no, n``
    and the empty string, in any case; anything that is not a string is
    returned unchanged. Other text raises ``NotImplementedError``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ('true', 't', 'yes', 'y'):
            return True
        if text in ('false', 'f', 'no', 'n', ''):
            return False
        raise NotImplementedError('Unknown bool %s' % value)
    return value


class Metric(object):
    """One published metric, as the runtime hands it to the host."""

    __slots__ = ('name', 'value', 'raw_value', 'precision', 'counter',
                 'timestamp', 'instance')

    def __init__(self, name, value, raw_value, precision, counter,
                 timestamp, instance):
        self.name = name
        self.value = value
        self.raw_value = raw_value
        self.precision = precision
        self.counter = counter
        self.timestamp = timestamp
        self.instance = instance

    def __repr__(self):
        return 'Metric(%r, %r, precision=%r%s)' % (
            self.name, self.value, self.precision,
            ', COUNTER' if self.counter else '')


def _number(value, precision):
    """A publishable value as a float, the way Diamond's ``Metric`` takes
    it: ints and floats as they are, anything else through ``float()``
    (rounded when the precision is 0)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Decimal):
        return float(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError('Invalid value when creating new Metric %r' % (value,))
    return float(round(f)) if precision == 0 else f


class Collector(object):
    """Base class of a collector: override ``collect`` (and usually
    ``get_default_config`` and ``get_default_config_help``)."""

    # Most metrics one run may publish (the host's `max_metrics`; set by
    # the runtime): past it, publish raises instead of filling memory.
    max_metrics = None

    def __init__(self, config=None, handlers=None, name=None, configfile=None):
        self.name = name if name is not None else self.__class__.__name__
        self.log = logging.getLogger('diamond')
        self.handlers = handlers if handlers is not None else []
        self.last_values = {}
        self.published = []
        self.configfile = configfile
        self.config = {}
        self.load_config(override_config=config)

    # -- configuration -------------------------------------------------

    def load_config(self, configfile=None, override_config=None):
        """Defaults, then ``override_config`` (a flat dict of keys, or
        Diamond's ``{'collectors': {NAME: {...}}}``), then
        ``process_config``."""
        self.config = {}
        defaults = self.get_default_config()
        if defaults:
            self.config.update(defaults)
        if override_config:
            nested = override_config.get('collectors')
            if isinstance(nested, dict):
                self.config.update(nested.get('default', {}))
                self.config.update(nested.get(self.name, {}))
            else:
                self.config.update(override_config)
        self.process_config()

    def process_config(self):
        """Normalises Diamond's keys after the configuration changes: a
        ``byte_unit`` string becomes a list, ``enabled`` and
        ``measure_collector_time`` booleans."""
        unit = self.config.get('byte_unit')
        if isinstance(unit, str):
            self.config['byte_unit'] = unit.split()
        for key in ('enabled', 'measure_collector_time'):
            if key in self.config:
                self.config[key] = str_to_bool(self.config[key])

    def get_default_config_help(self):
        """Help text of each option."""
        return {
            'enabled': 'Enable collecting these metrics',
            'byte_unit': 'Default numeric output(s)',
            'measure_collector_time': 'Collect the collector run time in ms',
            'metrics_whitelist': 'Regex to match metrics to transmit. '
                                 'Mutually exclusive with metrics_blacklist',
            'metrics_blacklist': 'Regex to match metrics to block. '
                                 'Mutually exclusive with metrics_whitelist',
        }

    def get_default_config(self):
        """Default configuration (Diamond's base keys)."""
        return {
            'enabled': False,
            'path_prefix': 'servers',
            'instance_prefix': 'instances',
            'path_suffix': '',
            'interval': 300,
            'ttl_multiplier': 2,
            'byte_unit': 'byte',
            'measure_collector_time': False,
            'metrics_whitelist': None,
            'metrics_blacklist': None,
        }

    # -- publishing ----------------------------------------------------

    def get_hostname(self):
        """The host name the agent resolved for this collector."""
        return self.config.get('hostname') or ''

    def get_metric_path(self, name, instance=None):
        """The full path of metric ``name``, as the host will build it."""
        path = self.config.get('path') or self.name
        if path == '.':
            path = ''
        if instance is not None:
            prefix = self.config.get('instance_prefix', 'instances')
            return '.'.join(x for x in (prefix, str(instance), path, name) if x)
        prefix = self.config.get('path_prefix', 'servers')
        suffix = self.config.get('path_suffix', '')
        return '.'.join(x for x in (prefix, self.get_hostname(), path, suffix, name) if x)

    def collect(self):
        """One collection: call ``publish`` for each metric."""
        raise NotImplementedError('%s does not define collect()' % self.name)

    def publish(self, name, value, raw_value=None, precision=0,
                metric_type='GAUGE', instance=None, timestamp=None):
        """Publishes metric ``name`` (relative to the collector's path)."""
        if value is None:
            raise ValueError('metric %r has no value' % (name,))
        if isinstance(value, _FirstSample):
            return
        if metric_type not in ('GAUGE', 'COUNTER'):
            raise ValueError('metric %r: metric_type must be GAUGE or COUNTER, not %r'
                             % (name, metric_type))
        if not isinstance(precision, int) or isinstance(precision, bool):
            self.log.warning('Metric %s does not have a valid precision', name)
            precision = 0
        if precision < 0 or precision > MAX_PRECISION:
            raise ValueError('metric %r: precision %r is not in 0..%d'
                             % (name, precision, MAX_PRECISION))
        value = _number(value, precision)
        raw = None
        if raw_value is not None:
            try:
                raw = float(raw_value)
            except (TypeError, ValueError):
                raw = None
        stamp = 0
        if timestamp is not None:
            stamp = int(timestamp)
            if stamp < 0:
                raise ValueError('metric %r: timestamp %r is negative' % (name, timestamp))
        if self.max_metrics is not None and len(self.published) >= self.max_metrics:
            raise OverflowError('more than %d metrics in one run (the limit max_metrics)'
                                % self.max_metrics)
        self.published.append(Metric(
            str(name), value, raw, precision, metric_type == 'COUNTER', stamp,
            None if instance is None else str(instance)))

    def publish_metric(self, metric):
        """Publishes a :class:`Metric` built by hand, or Diamond's
        ``diamond.metric.Metric`` (its full path under this collector's,
        as ``get_metric_path`` gives it)."""
        if isinstance(metric, Metric):
            self.published.append(metric)
            return
        path = str(metric.path)
        prefix = self.get_metric_path('') + '.'
        name = path[len(prefix):] if path.startswith(prefix) else path
        return self.publish(name, metric.value, raw_value=metric.raw_value,
                            precision=metric.precision, metric_type=metric.metric_type,
                            timestamp=metric.timestamp)

    def publish_gauge(self, name, value, precision=0, instance=None):
        """``publish`` of a gauge."""
        return self.publish(name, value, precision=precision,
                            metric_type='GAUGE', instance=instance)

    def publish_counter(self, name, value, precision=0, max_value=0,
                        time_delta=True, interval=None, allow_negative=False,
                        instance=None):
        """Publishes the rate of counter ``name`` (see ``derivative``);
        the sample itself is the metric's raw value."""
        raw_value = value
        value = self.derivative(name, value, max_value=max_value,
                                time_delta=time_delta, interval=interval,
                                allow_negative=allow_negative,
                                instance=instance)
        return self.publish(name, value, raw_value=raw_value,
                            precision=precision, metric_type='COUNTER',
                            instance=instance)

    def derivative(self, name, new, max_value=0, time_delta=True,
                   interval=None, allow_negative=False, instance=None):
        """The change of counter ``name`` since the last sample, per second
        of ``interval`` (the configured one unless given; per sample when
        ``time_delta`` is false). The first sample gives 0 (Diamond's), which
        ``publish`` leaves out unless ``publish_first_rate`` is true; a
        counter that went backwards wrapped at ``max_value``; a negative
        rate is 0 unless ``allow_negative``."""
        key = (name, instance)
        if key not in self.last_values:
            self.last_values[key] = new
            if str_to_bool(self.config.get('publish_first_rate', False)):
                return 0
            return _FirstSample(0)
        old = self.last_values[key]
        self.last_values[key] = new
        if new < old:
            old = old - max_value
        dx = new - old
        if interval is None:
            interval = float(self.config.get('interval', 300))
        dy = interval if time_delta else 1
        result = float(dx) / float(dy)
        if result < 0 and not allow_negative:
            result = 0
        return result

    # -- helpers Diamond collectors use ----------------------------------

    def find_binary(self, binary):
        """``binary`` if it exists, else the first match of its name on
        the usual paths (as far as the grants let the collector see)."""
        if os.path.exists(binary):
            return binary
        name = os.path.basename(binary)
        for d in ('/usr/bin', '/bin', '/usr/local/bin', '/usr/sbin', '/sbin',
                  '/usr/local/sbin'):
            candidate = os.path.join(d, name)
            if os.path.exists(candidate):
                return candidate
        return binary


class ProcessCollector(Collector):
    """A collector that runs a command (``bin``), as Diamond's."""

    def get_default_config_help(self):
        help = super(ProcessCollector, self).get_default_config_help()
        help.update({'use_sudo': 'Use sudo?', 'sudo_cmd': 'Path to sudo'})
        return help

    def get_default_config(self):
        config = super(ProcessCollector, self).get_default_config()
        config.update({'use_sudo': False, 'sudo_cmd': '/usr/bin/sudo'})
        return config

    def run_command(self, args):
        """Runs ``bin`` with ``args``; ``(stdout, stderr)`` or None."""
        import subprocess
        if 'bin' not in self.config:
            raise Exception('config does not have any binary configured')
        command = [self.config['bin']] + list(args)
        if str_to_bool(self.config.get('use_sudo', False)):
            command.insert(0, self.config['sudo_cmd'])
        try:
            return subprocess.Popen(command, stdout=subprocess.PIPE).communicate()
        except OSError:
            self.log.exception('Unable to run %s', command)
            return None
