"""Python 2 source as Python 3 code with Python 2's meaning (pure: no host,
no imports of the script).

Two passes. The first works on the text, through a small scanner that
knows strings, comments, numbers and brackets, and rewrites what Python 3
cannot parse, or parses with another meaning: the ``print`` and ``exec``
statements, ``except E, e:`` (in Python 3.14 a tuple of two types),
``raise E, msg``, backticks, ``<>``, ``0755`` and ``10L``, ``ur''``, tabs in
indentation. The second works on the syntax tree: ``d.iteritems()`` and
its kin, ``d.has_key(k)``, ``keys()``/``values()``/``items()`` as lists,
``/`` of two integers as floor division (unless the script imports
``division`` from ``__future__``), ``sorted(..., cmp=f)``, ``str.decode``.
The names the result calls (``wdiamond_py2_div`` and the rest) are in
:mod:`wdiamond.py2.names`.
"""

import ast
import copy
import re
import warnings

# Names only Python 2 code uses (as a name, an attribute or an import).
_PY2_MODULES = frozenset([
    'urllib2', 'urlparse', 'httplib', 'cPickle', 'Queue', 'StringIO',
    'cStringIO', 'xmlrpclib', 'commands', 'ConfigParser', 'HTMLParser',
    '__builtin__', 'SocketServer', 'htmlentitydefs', 'cookielib',
])
_PY2_WORDS = re.compile(
    r'\b(?:iteritems|itervalues|iterkeys|has_key|xrange|basestring|unicode|'
    r'long|raw_input|unichr|izip|imap|ifilter|maxint|getcwdu)\b')
_MARKER = re.compile(r'^#.*wdiamond:\s*python([23])\b', re.M)

_NUMBER = re.compile(
    r'0[xX][0-9a-fA-F_]+[lL]?|0[oO][0-7_]+|0[bB][01_]+|'
    r'(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?[jJlL]?')
_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_STRING_START = re.compile(r'(?:[rRuUbB]|[uU][rR]|[bB][rR]|[rR][bB])?(?:\'\'\'|"""|\'|")')
_OPS = ('**=', '//=', '>>=', '<<=', '<>', '!=', '==', '<=', '>=', '**', '//',
        '>>', '<<', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '->')


def marked(source):
    """Whether a ``# wdiamond: python2``/``python3`` comment decides."""
    return _MARKER.search(source) is not None


def is_python2(source, syntax_only=False):
    """Whether ``source`` is Python 2 code (see :func:`detect`)."""
    return detect(source, syntax_only)[0]


def detect(source, syntax_only=False):
    """(whether ``source`` is Python 2 code, its Python 3 syntax tree when
    it has one: compile that, not the text again). A ``# wdiamond:
    python2`` (or ``python3``) comment decides; else it is Python 2 when
    Python 3 cannot parse it, when its ``except`` clauses bind a name with
    a comma, or (unless ``syntax_only``: a library written for both, which
    takes its Python 3 branch) when it uses a name only Python 2 has
    (``iteritems``, ``xrange``, ``long``, ``urllib2``…)."""
    m = _MARKER.search(source)
    if m and m.group(1) == '2':
        return True, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', SyntaxWarning)
            tree = ast.parse(source)
    except SyntaxError:
        return not m, None
    return (not m and _python2_nodes(tree, syntax_only)), tree


def _python2_nodes(tree, syntax_only):
    """Whether the tree holds a Python 2 mark (:func:`detect`)."""
    for node in ast.walk(tree):
        if syntax_only and not isinstance(node, ast.ExceptHandler):
            continue
        if isinstance(node, ast.Import):
            if any(a.name.split('.')[0] in _PY2_MODULES for a in node.names):
                return True
        elif isinstance(node, ast.ImportFrom):
            if (node.module or '').split('.')[0] in _PY2_MODULES:
                return True
        elif isinstance(node, ast.ExceptHandler):
            # `except A, e:` parses (3.14) as a tuple whose last item is a
            # plain name, never a type a script defines that way.
            t = node.type
            if isinstance(t, ast.Tuple) and node.name is None and t.elts and \
                    isinstance(t.elts[-1], ast.Name) and t.elts[-1].id[:1].islower():
                return True
        elif isinstance(node, ast.Name) and _PY2_WORDS.fullmatch(node.id):
            return True
        elif isinstance(node, ast.Attribute) and _PY2_WORDS.fullmatch(node.attr):
            return True
    return False


# -- the scanner -----------------------------------------------------------

def scan(source):
    """``source`` as (kind, text) tokens whose texts add up to it: kinds
    ``str``, ``comment``, ``name``, ``num``, ``op``, ``nl``, ``ws``,
    ``cont`` (a backslash continuation)."""
    out = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == '\n':
            out.append(('nl', c))
            i += 1
        elif c in ' \t\r\f':
            j = i
            while j < n and source[j] in ' \t\r\f':
                j += 1
            out.append(('ws', source[i:j]))
            i = j
        elif c == '#':
            j = source.find('\n', i)
            j = n if j < 0 else j
            out.append(('comment', source[i:j]))
            i = j
        elif c == '\\' and source.startswith('\n', i + 1):
            out.append(('cont', '\\\n'))
            i += 2
        else:
            m = _STRING_START.match(source, i)
            if m:
                j = _string_end(source, m.end(), source[m.end() - 1] * (
                    3 if m.group().endswith(('"""', "'''")) else 1))
                out.append(('str', source[i:j]))
                i = j
                continue
            m = _NAME.match(source, i)
            if m:
                out.append(('name', m.group()))
                i = m.end()
                continue
            if c.isdigit() or (c == '.' and source[i + 1:i + 2].isdigit()):
                m = _NUMBER.match(source, i)
                out.append(('num', m.group()))
                i = m.end()
                continue
            for op in _OPS:
                if source.startswith(op, i):
                    out.append(('op', op))
                    i += len(op)
                    break
            else:
                out.append(('op', c))
                i += 1
    return out


def _string_end(source, i, quote):
    """The index after the string whose body starts at ``i``."""
    n = len(source)
    while i < n:
        if source[i] == '\\':
            i += 2
        elif source.startswith(quote, i):
            return i + len(quote)
        elif len(quote) == 1 and source[i] == '\n':
            return i  # unterminated: let the compiler say so
        else:
            i += 1
    return n


# -- pass 1: the text ----------------------------------------------------------

def _number(text):
    """``0755`` -> ``0o755``; ``10L`` -> ``10``."""
    if text[-1] in 'lL':
        text = text[:-1]
    if len(text) > 1 and text[0] == '0' and text.isdigit():
        text = '0o' + text[1:]
    return text


def _statements(tokens):
    """The start index of every statement (after a newline, `;` or `:` at
    bracket depth 0, past whitespace)."""
    starts = []
    depth = 0
    at_start = True
    for i, (kind, text) in enumerate(tokens):
        if kind in ('ws', 'comment', 'cont'):
            continue
        if kind == 'nl':
            if depth == 0:
                at_start = True
            continue
        if at_start:
            starts.append(i)
            at_start = False
        if kind == 'op':
            if text in '([{':
                depth += 1
            elif text in ')]}':
                depth = max(0, depth - 1)
            elif text in (';', ':') and depth == 0:
                at_start = True
    return starts


def _statement_end(tokens, i):
    """The index of the token that ends the statement starting at ``i``
    (a newline, `;` or comment at depth 0; or the end)."""
    depth = 0
    n = len(tokens)
    while i < n:
        kind, text = tokens[i]
        if kind == 'op':
            if text in '([{':
                depth += 1
            elif text in ')]}':
                depth -= 1
            elif text == ';' and depth == 0:
                return i
            elif text == ':' and depth == 0 and tokens[i - 1:i] != [('name', 'lambda')]:
                return i
        elif kind in ('nl', 'comment') and depth == 0:
            return i
        i += 1
    return n


def _split_top(parts):
    """Token list split at commas of depth 0 (each piece's text)."""
    pieces, cur, depth = [], [], 0
    for kind, text in parts:
        if kind == 'op' and text in '([{':
            depth += 1
        elif kind == 'op' and text in ')]}':
            depth -= 1
        if kind == 'op' and text == ',' and depth == 0:
            pieces.append(''.join(t for _, t in cur).strip())
            cur = []
        else:
            cur.append((kind, text))
    pieces.append(''.join(t for _, t in cur).strip())
    return pieces


def _next_significant(tokens, i):
    while i < len(tokens) and tokens[i][0] in ('ws', 'cont'):
        i += 1
    return i


def fix_text(source):
    """Pass 1: Python 2 syntax as Python 3 text."""
    tokens = scan(source)
    # Indentation with tabs: Python 2 counts a tab to the next multiple of 8.
    line_start = True
    for i, (kind, text) in enumerate(tokens):
        if line_start and kind == 'ws' and '\t' in text:
            tokens[i] = ('ws', text.expandtabs(8))
        line_start = kind == 'nl'
    # Tokens: numbers, `<>`, backticks, `ur''`.
    backtick = False
    for i, (kind, text) in enumerate(tokens):
        if kind == 'num':
            tokens[i] = (kind, _number(text))
        elif kind == 'op' and text == '<>':
            tokens[i] = (kind, '!=')
        elif kind == 'op' and text == '`':
            tokens[i] = ('raw', ')' if backtick else 'repr(')
            backtick = not backtick
        elif kind == 'str' and text[:2].lower() == 'ur':
            tokens[i] = (kind, text[1:])
    # Statements, last first so that indices stay valid.
    for s in reversed(_statements(tokens)):
        kind, word = tokens[s]
        if kind != 'name' or word not in ('print', 'exec', 'raise', 'except'):
            continue
        e = _statement_end(tokens, s + 1)
        if word == 'except':
            # `except A, e:` / `except (A, B), e:` -> `... as e`
            body = tokens[s + 1:e]
            pieces = _split_top(body)
            if len(pieces) == 2 and _NAME.fullmatch(pieces[1]):
                tokens[s + 1:e] = [('ws', ' '), ('raw', '%s as %s' % tuple(pieces))]
            continue
        j = _next_significant(tokens, s + 1)
        nxt = tokens[j] if j < e else ('nl', '')
        if word == 'raise':
            pieces = _split_top(tokens[s + 1:e])
            if len(pieces) in (2, 3) and pieces[0]:
                tokens[s + 1:e] = [('raw', ' %s(%s)' % (pieces[0], pieces[1]))]
            continue
        if nxt[0] == 'op' and nxt[1] in ('(', '=', '.', ',', ')'):
            continue  # a call or a name, as Python 3 writes it
        if nxt[0] == 'op' and nxt[1] in ('+=', '-=', '*=', '/=', '['):
            continue
        body = tokens[j:e] if j < e else []
        if word == 'exec':
            text = ''.join(t for _, t in body).strip()
            code, _, scope = text.partition(' in ')
            args = code.strip() + (', ' + scope.strip() if scope else '')
            tokens[s:e] = [('raw', 'exec(%s)' % args)]
            continue
        # print
        target = None
        if body and body[0] == ('op', '>>'):
            pieces = _split_top(body[1:])
            target, pieces = pieces[0], pieces[1:]
        else:
            pieces = _split_top(body) if body else []
        end = None
        if pieces and pieces[-1] == '' and len(pieces) > 1:
            pieces = pieces[:-1]
            end = "' '"
        args = [p for p in pieces if p]
        if target:
            args.append('file=%s' % target)
        if end:
            args.append('end=%s' % end)
        tokens[s:e] = [('raw', 'print(%s)' % ', '.join(args))]
    return ''.join(text for _, text in tokens)


# -- pass 2: the tree ------------------------------------------------------------

_RENAMED = {'iteritems': 'items', 'itervalues': 'values', 'iterkeys': 'keys'}


class _Python2(ast.NodeTransformer):
    """Python 2 meanings that Python 3 spells differently."""

    def __init__(self, true_division):
        self.true_division = true_division

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute):
            if f.attr in _RENAMED and not node.args:
                f.attr = _RENAMED[f.attr]
                return node
            if f.attr == 'has_key' and len(node.args) == 1 and not node.keywords:
                return ast.copy_location(
                    ast.Compare(left=node.args[0], ops=[ast.In()], comparators=[f.value]), node)
            if f.attr in ('keys', 'values', 'items') and not node.args and not node.keywords:
                return ast.copy_location(
                    ast.Call(func=ast.Name('list', ast.Load()), args=[node], keywords=[]), node)
            if f.attr == 'decode':
                return ast.copy_location(ast.Call(
                    func=ast.Name('wdiamond_py2_decode', ast.Load()),
                    args=[f.value] + node.args, keywords=node.keywords), node)
        is_sort = (isinstance(f, ast.Name) and f.id == 'sorted') or \
            (isinstance(f, ast.Attribute) and f.attr == 'sort')
        if is_sort:
            for k in node.keywords:
                if k.arg == 'cmp':
                    k.arg = 'key'
                    k.value = ast.Call(func=ast.Name('wdiamond_py2_cmp_to_key', ast.Load()),
                                       args=[k.value], keywords=[])
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Div) and not self.true_division:
            return ast.copy_location(ast.Call(
                func=ast.Name('wdiamond_py2_div', ast.Load()),
                args=[node.left, node.right], keywords=[]), node)
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Div) and not self.true_division and \
                isinstance(node.target, (ast.Name, ast.Attribute, ast.Subscript)):
            load = _as_load(node.target)
            value = ast.Call(func=ast.Name('wdiamond_py2_div', ast.Load()),
                             args=[load, node.value], keywords=[])
            return ast.copy_location(ast.Assign(targets=[node.target], value=value), node)
        return node


def _as_load(target):
    """A copy of an assignment target that reads it."""
    node = copy.deepcopy(target)
    for n in ast.walk(node):
        if hasattr(n, 'ctx'):
            n.ctx = ast.Load()
    return node


def _true_division(tree):
    return any(isinstance(n, ast.ImportFrom) and n.module == '__future__' and
               any(a.name == 'division' for a in n.names) for n in tree.body)


def translate(source, filename):
    """The code object of Python 2 ``source``, compiled as Python 3 with
    Python 2's meaning. A ``SyntaxError`` names the original line (pass 1
    keeps line numbers)."""
    text = fix_text(source)
    with warnings.catch_warnings():
        # Python 2 took `'\d'` as it is, without a word.
        warnings.simplefilter('ignore', SyntaxWarning)
        tree = ast.parse(text, filename)
        tree = _Python2(_true_division(tree)).visit(tree)
        ast.fix_missing_locations(tree)
        return compile(tree, filename, 'exec')
