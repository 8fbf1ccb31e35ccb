"""Diamond's ``diamond.convertor``: binary units (``byte_unit``) and
``camelcase_to_underscore``, with the same results as Diamond's.

A value is held in bits as a float, then read out in the wanted unit; the
order of the float operations is Diamond's, so results match to the bit.
"""

import re

_BITS = {'bit': 0, 'b': 0}
_BYTES = {'byte': 0, 'B': 0, 'kB': 1}
_BITS['kbit'] = 1
for _power, (_long, _short) in enumerate(
        [('kilo', 'K'), ('mega', 'M'), ('giga', 'G'), ('tera', 'T'),
         ('peta', 'P'), ('exa', 'E'), ('zetta', 'Z'), ('yotta', 'Y')], 1):
    for _name in (_long + 'bit', _short + 'bit', _short + 'ibit'):
        _BITS.setdefault(_name, _power)
    for _name in (_long + 'byte', _short + 'B', _short + 'iB', _short + 'byte'):
        _BYTES.setdefault(_name, _power)
_BITS.pop('Kbit', None)  # Diamond knows kilobit, kbit and Kibit only


def _unit(name):
    if name in _BITS:
        return False, _BITS[name]
    if name in _BYTES:
        return True, _BYTES[name]
    raise NotImplementedError('unit %s' % name)


class binary(object):
    """A quantity of data, convertible between bit and byte units."""

    def __init__(self, value=None, unit=None):
        self.value = None
        if value is not None:
            self.set(value, unit)

    @staticmethod
    def convert(value=None, oldUnit=None, newUnit=None):
        """``value`` in ``oldUnit``, expressed in ``newUnit``."""
        return binary(value=value, unit=oldUnit).get(unit=newUnit)

    def set(self, value, unit=None):
        is_bytes, power = _unit(unit) if unit else (False, 0)
        if is_bytes:
            self.value = float(value * pow(1024, power)) * 8
        else:
            self.value = float(value * pow(1024, power))

    def get(self, unit=None):
        is_bytes, power = _unit(unit) if unit else (False, 0)
        bits = self.value / 8 if is_bytes else self.value
        return bits / pow(1024, power)


_FIRST_CAP = re.compile('(.)([A-Z][a-z]+)')
_CAPS = re.compile('([a-z0-9])([A-Z])')


def camelcase_to_underscore(name):
    """``MemTotal`` -> ``mem_total``."""
    return _CAPS.sub(r'\1_\2', _FIRST_CAP.sub(r'\1_\2', name)).lower()


# A time unit's names, and how many of the next smaller unit it holds, from
# the millisecond up (Diamond's chain: a year is 365 days).
_TIME_UP = [(('second', 'seconds', 's'), 1000), (('minute', 'minutes', 'm'), 60),
            (('hour', 'hours', 'h'), 60), (('day', 'days', 'd'), 24),
            (('year', 'years', 'y'), 365)]
_TIME_DOWN = [(('microsecond', 'microseconds', 'us'), 1000),
              (('nanosecond', 'nanoseconds', 'ns'), 1000)]
_MS = ('millisecond', 'milliseconds', 'ms')


def _time_unit(unit):
    """('up'|'down', steps) of a unit below or above the millisecond."""
    name = (unit or 'ms').lower()
    if name in _MS:
        return 'up', 0
    for table, way in ((_TIME_UP, 'up'), (_TIME_DOWN, 'down')):
        for steps, (names, _) in enumerate(table, 1):
            if name in names:
                return way, steps
    raise NotImplementedError('unit %s' % unit)


class time(object):
    """A duration, held in milliseconds, convertible between units (ns
    to years), with Diamond's order of operations."""

    def __init__(self, value=None, unit=None):
        self.value = None
        if value is not None:
            self.set(value, unit)

    @staticmethod
    def convert(value=None, oldUnit=None, newUnit=None):
        """``value`` in ``oldUnit``, expressed in ``newUnit``."""
        return time(value=value, unit=oldUnit).get(unit=newUnit)

    def set(self, value, unit=None):
        way, steps = _time_unit(unit)
        if way == 'up':
            for _, factor in reversed(_TIME_UP[:steps]):
                value = value * factor
            self.value = float(value)
        else:
            for _, factor in _TIME_DOWN[:steps]:
                value = value / factor
            self.value = float(value)

    def get(self, unit=None):
        way, steps = _time_unit(unit)
        value = self.value
        if way == 'up':
            for _, factor in _TIME_UP[:steps]:
                value = value / factor
        else:
            for _, factor in _TIME_DOWN[:steps]:
                value = value * factor
        return value
