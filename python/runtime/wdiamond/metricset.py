"""Published metrics -> the columns of the contract's ``metric-set``.

Pure: returns a dict of the record's fields (``names`` and the one-byte
columns as ``bytes``), which the runtime wraps in the generated type.
Every column has one entry per metric; the host checks them all again.
"""

NAN = float('nan')
MAX_INSTANCES = 65535


def encode(metrics):
    """The columns of ``metrics`` (a list of ``collector.Metric``)."""
    names = bytearray()
    ends = []
    values = []
    precisions = bytearray()
    counters = bytearray()
    timestamps = []
    raws = []
    ids = []
    instances = []
    index = {}
    for m in metrics:
        names += m.name.encode('utf-8', 'surrogatepass')
        ends.append(len(names))
        values.append(m.value)
        precisions.append(m.precision)
        counters.append(1 if m.counter else 0)
        timestamps.append(m.timestamp)
        raws.append(NAN if m.raw_value is None else m.raw_value)
        if m.instance is None:
            ids.append(0)
        else:
            i = index.get(m.instance)
            if i is None:
                if len(instances) >= MAX_INSTANCES:
                    raise ValueError('more than %d distinct instances in one run'
                                     % MAX_INSTANCES)
                instances.append(m.instance)
                i = index[m.instance] = len(instances)
            ids.append(i)
    return {
        'names': bytes(names),
        'name_ends': ends,
        'values': values,
        'precisions': bytes(precisions),
        'counters': bytes(counters),
        'timestamps': timestamps,
        'raw_values': raws,
        'instance_ids': ids,
        'instances': instances,
        'series': [],
    }
