"""VSIM's FILTER expressions: the compiler, the evaluator and the JSON field extractor of
Redis 8's vector sets (`modules/vector-sets/expr.c` and `fastjson.c`, Redis 8.2.3).

This module owns the expression language only: it is pure (bytes in, booleans out), knows
nothing of keys or vectors, and is used by `t_vset` for `VSIM ... FILTER expr`. It follows
the C code step by step, because a filter that accepts one more element than the module
does changes the reply, and a syntax error must carry the module's exact text.

Compilation (`compile_expr`), as `exprCompile`:

- The expression is a C string: it ends at its first NUL byte (`RedisModule_Strdup`).
- Tokens (`exprTokenize`), after skipping C `isspace` bytes: a number (a digit, or `-` then
  a digit where a value may start: at the beginning or after an operator other than `)`),
  made of the bytes `0-9 . e E` (and one leading `-`), which `strtod` must read whole (so
  `1e-5` is an error: the `-` ends the number); a string in `'` or `"`, whose content keeps
  its backslashes (a backslash only stops the next byte from closing the string); a selector
  `.name` (letters, digits, `_`, `-`); a tuple `[1, "a", ...]` of numbers and strings; else
  the longest run of letters and `+-*%/!()<>=|&`, which is `null` when it is exactly that,
  or else must START with an operator (the longest one wins and the rest is read again:
  `andx` is `and` then an error at `x`). Operators by precedence: `( )` 7, `! not` 6 (unary),
  `**` 5 (right associative), `* / %` 4, `+ -` 3, `> >= < <= == != in` 2, `and &&` 1,
  `or ||` 0.
- Shunting-yard with a count of the values the program would leave on the stack; too few
  operands, an unmatched parenthesis or more than one final value is a syntax error.
- Errors: the error position is where tokenizing stopped, or 0 for every error found after
  tokenizing (the module never sets a token's offset); VSIM answers
  `ERR syntax error in FILTER expression near: <expression from that position>` (position
  0 when past the end).

Evaluation (`Expr.run(attributes_json)`), as `exprRun`: an element without attributes never
matches; a selector whose field is missing or not convertible (objects, malformed JSON)
makes the whole expression false. Arithmetic is in doubles with C semantics (division by
zero gives inf/nan, `%` is `fmod`, `**` is `pow`); comparisons convert both sides to
numbers (a string that `strtod` does not read whole is 0, a tuple is 0); `==` compares two
strings as bytes, two numbers as numbers, `null` only equals `null`; `in` is tuple
membership (by `==`) or, for two strings, substring; truth: a number is true when non-zero
(NaN too), an empty string and `null` are false, anything else is true.

JSON (`json_extract_field`, `fastjson.c`): only top-level fields; a key is compared with
the selector byte for byte (escapes in keys are not decoded); values: strings (escapes
`\\n \\r \\t \\\\ \\"` decoded, any other escaped byte kept as is, so `\\u0041` reads
`u0041`), numbers (`strtod` over the run of `0-9 - + . e E`, read whole), `true`/`false`
(the numbers 1/0, followed by a delimiter), `null` (the null value), arrays of those (nested
arrays too); an object value is not convertible.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Token types (expr.c EXPR_TOKEN_*).
EOF, NUM, STR, TUPLE, SELECTOR, OP, NULL = range(7)

# Opcodes (expr.c EXPR_OP_*).
(OPAREN, CPAREN, NOT, POW, MULT, DIV, MOD, SUM, DIFF, GT, GTE, LT, LTE, EQ, NEQ, IN, AND, OR) = (
    range(18)
)

# ExprOptable, in its order: (name, opcode, precedence, arity).
_OPTABLE: tuple[tuple[bytes, int, int, int], ...] = (
    (b"(", OPAREN, 7, 0),
    (b")", CPAREN, 7, 0),
    (b"!", NOT, 6, 1),
    (b"not", NOT, 6, 1),
    (b"**", POW, 5, 2),
    (b"*", MULT, 4, 2),
    (b"/", DIV, 4, 2),
    (b"%", MOD, 4, 2),
    (b"+", SUM, 3, 2),
    (b"-", DIFF, 3, 2),
    (b">", GT, 2, 2),
    (b">=", GTE, 2, 2),
    (b"<", LT, 2, 2),
    (b"<=", LTE, 2, 2),
    (b"==", EQ, 2, 2),
    (b"!=", NEQ, 2, 2),
    (b"in", IN, 2, 2),
    (b"and", AND, 1, 2),
    (b"&&", AND, 1, 2),
    (b"or", OR, 0, 2),
    (b"||", OR, 0, 2),
)
# exprGetOpPrecedence / exprGetOpArity: the first table entry with that opcode.
_PRECEDENCE: dict[int, int] = {}
_ARITY: dict[int, int] = {}
for _name, _code, _prec, _arity in _OPTABLE:
    _PRECEDENCE.setdefault(_code, _prec)
    _ARITY.setdefault(_code, _arity)

_OP_SPECIALCHARS = frozenset(b"+-*%/!()<>=|&")
_SPACE = frozenset(b" \t\n\v\f\r")  # C isspace in the C locale
_DIGITS = frozenset(b"0123456789")
_ALPHA = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SELECTOR_CHARS = _ALPHA | _DIGITS | frozenset(b"_-")
_NUMBER_CHARS = _DIGITS | frozenset(b".eE")
_JSON_NUMBER_CHARS = _DIGITS | frozenset(b"-+.eE")


@dataclass(slots=True)
class Token:
    type: int
    num: float = 0.0
    str: bytes = b""  # STR content, SELECTOR name
    op: int = 0
    items: list[Token] | None = None  # TUPLE elements


class ExprSyntaxError(Exception):
    """The expression does not compile; `pos` is the module's error position."""

    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


# ---- strtod ----

_DEC_FLOAT = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    rb"|inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?)",
    re.IGNORECASE,
)
_HEX_FLOAT = re.compile(
    rb"[+-]?0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?", re.IGNORECASE
)


def strtod_whole(text: bytes) -> float | None:
    """`strtod(text, &end)` with `*end == '\\0'` required, as the module checks it: leading
    C spaces are skipped, the text ends at a NUL, an empty text is not a number. ERANGE is
    not checked (the module never looks at errno): 1e999 is inf."""
    nul = text.find(b"\0")
    if nul >= 0:
        text = text[:nul]
    i = 0
    while i < len(text) and text[i] in _SPACE:
        i += 1
    body = text[i:]
    if not body:
        return None
    if _HEX_FLOAT.fullmatch(body):
        sign = -1.0 if body[:1] == b"-" else 1.0
        digits = body.lstrip(b"+-")
        try:
            return sign * float.fromhex(digits.decode())
        except OverflowError:
            return sign * math.inf
    if not _DEC_FLOAT.fullmatch(body):
        return None
    low = body.lower().lstrip(b"+-")
    neg = body[:1] == b"-"
    if low.startswith(b"nan"):
        return -math.nan if neg else math.nan
    if low.startswith(b"inf"):
        return -math.inf if neg else math.inf
    return float(body)


# ---- C double arithmetic (no exceptions: inf and nan as in C) ----


def _div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _fmod(a: float, b: float) -> float:
    if a != a or b != b or math.isinf(a) or b == 0:
        return math.nan
    return math.fmod(a, b)


def _is_odd_integer(x: float) -> bool:
    return x.is_integer() and abs(x) < 2**53 and int(x) % 2 == 1


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        return -math.inf if a < 0 and _is_odd_integer(b) else math.inf
    except ValueError:
        if a == 0 and b < 0:  # pole error: +-inf
            return math.copysign(math.inf, a) if _is_odd_integer(b) else math.inf
        return math.nan  # negative base, non-integer exponent


# ---- tokens to values ----


def to_num(t: Token) -> float:
    """`exprTokenToNum`."""
    if t.type == NUM:
        return t.num
    if t.type == STR and len(t.str) < 256:
        v = strtod_whole(t.str)
        return 0.0 if v is None else v
    return 0.0


def to_bool(t: Token) -> bool:
    """`exprTokenToBool`."""
    if t.type == NUM:
        return t.num != 0
    if t.type == STR and not t.str:
        return False
    return t.type != NULL


def tokens_equal(a: Token, b: Token) -> bool:
    """`exprTokensEqual`."""
    if a.type == STR and b.type == STR:
        return a.str == b.str
    if a.type == NUM and b.type == NUM:
        return a.num == b.num
    if a.type == NULL or b.type == NULL:
        return a.type == b.type
    return to_num(a) == to_num(b)


# ---- compilation ----


class _Tokenizer:
    def __init__(self, expr: bytes) -> None:
        self.e = expr
        self.p = 0

    def at(self, i: int = 0) -> int:
        j = self.p + i
        return self.e[j] if j < len(self.e) else 0

    def spaces(self) -> None:
        while self.at() in _SPACE and self.at() != 0:
            self.p += 1

    def number(self) -> Token | None:
        start = self.p
        while True:
            c = self.at()
            if not (c in _NUMBER_CHARS or (self.p == start and c == 0x2D)):
                break
            if self.p - start >= 255:
                return None
            self.p += 1
        v = strtod_whole(self.e[start : self.p])
        if v is None or not self.e[start : self.p]:
            return None
        return Token(NUM, num=v)

    def string(self) -> Token | None:
        quote = self.at()
        self.p += 1
        start = self.p
        while self.at() != 0:
            if self.at() == 0x5C and self.at(1) != 0:
                self.p += 2
                continue
            if self.at() == quote:
                t = Token(STR, str=self.e[start : self.p])
                self.p += 1
                return t
            self.p += 1
        return None

    def selector(self) -> Token:
        self.p += 1
        start = self.p
        while self.at() != 0 and self.at() in _SELECTOR_CHARS:
            self.p += 1
        return Token(SELECTOR, str=self.e[start : self.p])

    def tuple(self) -> Token | None:
        items: list[Token] = []
        self.p += 1
        while True:
            self.spaces()
            if self.at() == 0x5D:  # ]
                self.p += 1
                return Token(TUPLE, items=items)
            c = self.at()
            ele: Token | None
            if c in _DIGITS or c == 0x2D:
                ele = self.number()
            elif c in (0x22, 0x27):
                ele = self.string()
            else:
                return None
            if ele is None:
                return None
            items.append(ele)
            self.spaces()
            if self.at() == 0x5D:
                self.p += 1
                return Token(TUPLE, items=items)
            if self.at() != 0x2C:  # ,
                return None
            self.p += 1

    def operator_or_literal(self) -> Token | None:
        start = self.p
        while self.at() != 0 and (self.at() in _ALPHA or self.at() in _OP_SPECIALCHARS):
            self.p += 1
        run = self.e[start : self.p]
        if run == b"null":
            return Token(NULL)
        best, bestlen = 0, 0
        for name, code, _, _ in _OPTABLE:
            if len(name) <= len(run) and run.startswith(name) and len(name) > bestlen:
                best, bestlen = code, len(name)
        if bestlen == 0:
            return None
        self.p = start + bestlen
        return Token(OP, op=best)

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        while True:
            self.spaces()
            last = out[-1] if out else None
            minus_is_number = last is None or (last.type == OP and last.op != CPAREN)
            c = self.at()
            cur: Token | None = None
            if c == 0:
                cur = Token(EOF)
            elif c in _DIGITS or (minus_is_number and c == 0x2D and self.at(1) in _DIGITS):
                cur = self.number()
            elif c in (0x22, 0x27):
                cur = self.string()
            elif c == 0x2E and (self.at(1) == 0 or self.at(1) in _SELECTOR_CHARS):
                # `strchr("_-", '\0')` finds the terminator: a final `.` is an empty
                # selector (never matching), not an error.
                cur = self.selector()
            elif c == 0x5B:
                cur = self.tuple()
            elif c in _ALPHA or c in _OP_SPECIALCHARS:
                cur = self.operator_or_literal()
            if cur is None:
                raise ExprSyntaxError(self.p)
            out.append(cur)
            if cur.type == EOF:
                return out


@dataclass(slots=True)
class Expr:
    """A compiled FILTER expression: `program` in postfix order."""

    program: list[Token]

    def run(self, json: bytes | None) -> bool:
        """`exprRun` over an element's attributes (None: no attributes, never a match)."""
        if json is None:
            return False
        stack: list[Token] = []
        for t in self.program:
            if t.type == SELECTOR:
                obj = json_extract_field(json, t.str) if t.str else None
                if obj is None:
                    return False
                stack.append(obj)
                continue
            if t.type != OP:
                stack.append(t)
                continue
            b = stack.pop()
            a = stack.pop() if _ARITY[t.op] == 2 else None
            stack.append(Token(NUM, num=_apply(t.op, a, b)))
        return to_bool(stack.pop()) if stack else False


def _apply(op: int, a: Token | None, b: Token) -> float:
    if op == NOT:
        return 0.0 if to_bool(b) else 1.0
    assert a is not None
    if op == AND:
        return 1.0 if to_bool(a) and to_bool(b) else 0.0
    if op == OR:
        return 1.0 if to_bool(a) or to_bool(b) else 0.0
    if op == EQ:
        return 1.0 if tokens_equal(a, b) else 0.0
    if op == NEQ:
        return 0.0 if tokens_equal(a, b) else 1.0
    if op == IN:
        if b.type == TUPLE:
            return 1.0 if any(tokens_equal(a, e) for e in b.items or ()) else 0.0
        if a.type == STR and b.type == STR:
            return 1.0 if a.str in b.str else 0.0
        return 0.0
    x, y = to_num(a), to_num(b)
    if op == POW:
        return _pow(x, y)
    if op == MULT:
        return x * y
    if op == DIV:
        return _div(x, y)
    if op == MOD:
        return _fmod(x, y)
    if op == SUM:
        return x + y
    if op == DIFF:
        return x - y
    if op == GT:
        return 1.0 if x > y else 0.0
    if op == GTE:
        return 1.0 if x >= y else 0.0
    if op == LT:
        return 1.0 if x < y else 0.0
    if op == LTE:
        return 1.0 if x <= y else 0.0
    return 0.0


def compile_expr(expr: bytes) -> Expr:
    """`exprCompile`; raises `ExprSyntaxError` with the module's error position."""
    nul = expr.find(b"\0")
    if nul >= 0:
        expr = expr[:nul]
    tokens = _Tokenizer(expr).tokens()
    program: list[Token] = []
    ops: list[Token] = []
    stack_items = 0

    def move(op: Token) -> None:
        nonlocal stack_items
        arity = _ARITY[op.op]
        if stack_items < arity:
            raise ExprSyntaxError(0)
        program.append(op)
        stack_items = stack_items - arity + 1

    for t in tokens:
        if t.type == EOF:
            break
        if t.type in (NUM, STR, TUPLE, SELECTOR, NULL):
            program.append(t)
            stack_items += 1
            continue
        if t.op == OPAREN:
            ops.append(t)
            continue
        if t.op == CPAREN:
            while True:
                if not ops:
                    raise ExprSyntaxError(0)
                top = ops.pop()
                if top.op == OPAREN:
                    break
                move(top)
            continue
        prec = _PRECEDENCE[t.op]
        while ops and ops[-1].op != OPAREN:
            top_prec = _PRECEDENCE[ops[-1].op]
            if top_prec < prec or (t.op == POW and top_prec <= prec):
                break
            move(ops.pop())
        ops.append(t)
    while ops:
        top = ops.pop()
        if top.op == OPAREN:
            raise ExprSyntaxError(0)
        move(top)
    if stack_items != 1:
        raise ExprSyntaxError(0)
    return Expr(program)


def syntax_error_text(expr: bytes, pos: int) -> bytes:
    """VSIM's error for an expression that does not compile (CR/LF become spaces when the
    reply is written)."""
    if pos >= len(expr):
        pos = 0
    rest = expr[pos:]
    nul = rest.find(b"\0")
    if nul >= 0:
        rest = rest[:nul]
    return b"ERR syntax error in FILTER expression near: " + rest


# ---- fastjson.c ----


def _skip_ws(j: bytes, p: int) -> int:
    n = len(j)
    while p < n and j[p] in _SPACE:
        p += 1
    return p


def _skip_string(j: bytes, p: int) -> int | None:
    n = len(j)
    if p >= n or j[p] != 0x22:
        return None
    p += 1
    while p < n:
        if j[p] == 0x5C:
            p += 2
            continue
        if j[p] == 0x22:
            return p + 1
        p += 1
    return None


def _skip_bracketed(j: bytes, p: int, opener: int, closer: int) -> int | None:
    depth = 1
    p += 1
    n = len(j)
    while p < n and depth > 0:
        c = j[p]
        if c == 0x22:
            q = _skip_string(j, p)
            if q is None:
                return None
            p = q
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
        p += 1
    return p if depth == 0 else None


def _skip_value(j: bytes, p: int) -> int | None:
    p = _skip_ws(j, p)
    if p >= len(j):
        return None
    c = j[p]
    if c == 0x22:
        return _skip_string(j, p)
    if c == 0x7B:
        return _skip_bracketed(j, p, 0x7B, 0x7D)
    if c == 0x5B:
        return _skip_bracketed(j, p, 0x5B, 0x5D)
    for lit in (b"true", b"false", b"null"):
        if c == lit[0]:
            return p + len(lit) if j.startswith(lit, p) else None
    q = p
    while q < len(j) and j[q] in _JSON_NUMBER_CHARS:
        q += 1
    return q if q > p else None


_ESCAPES = {0x6E: 0x0A, 0x72: 0x0D, 0x74: 0x09, 0x5C: 0x5C, 0x22: 0x22}


def _parse_string(j: bytes, p: int) -> tuple[Token, int] | None:
    n = len(j)
    if p >= n or j[p] != 0x22:
        return None
    p += 1
    out = bytearray()
    esc = False
    q = p
    while q < n:
        c = j[q]
        if esc:
            out.append(_ESCAPES.get(c, c))
            esc = False
        elif c == 0x5C:
            esc = True
        elif c == 0x22:
            return Token(STR, str=bytes(out)), q + 1
        else:
            out.append(c)
        q += 1
    return None


def _parse_number(j: bytes, p: int) -> tuple[Token, int] | None:
    start = p
    while p < len(j) and p - start < 255 and j[p] in _JSON_NUMBER_CHARS:
        p += 1
    if p == start:
        return None
    v = strtod_whole(j[start:p])
    if v is None:
        return None
    return Token(NUM, num=v), p


def _parse_literal(j: bytes, p: int, lit: bytes, tok: Token) -> tuple[Token, int] | None:
    if not j.startswith(lit, p):
        return None
    q = p + len(lit)
    if q < len(j) and not (j[q] in _SPACE or j[q] in b",]}"):
        return None
    return tok, q


def _parse_array(j: bytes, p: int) -> tuple[Token, int] | None:
    p = _skip_ws(j, p + 1)
    items: list[Token] = []
    if p < len(j) and j[p] == 0x5D:
        return Token(TUPLE, items=items), p + 1
    while True:
        r = _parse_value(j, p)
        if r is None:
            return None
        ele, p = r
        items.append(ele)
        p = _skip_ws(j, p)
        if p >= len(j):
            return None
        if j[p] == 0x2C:
            p = _skip_ws(j, p + 1)
            continue
        if j[p] == 0x5D:
            return Token(TUPLE, items=items), p + 1
        return None


def _parse_value(j: bytes, p: int) -> tuple[Token, int] | None:
    p = _skip_ws(j, p)
    if p >= len(j):
        return None
    c = j[p]
    if c == 0x22:
        return _parse_string(j, p)
    if c == 0x5B:
        return _parse_array(j, p)
    if c == 0x7B:
        return None
    if c == 0x74:
        return _parse_literal(j, p, b"true", Token(NUM, num=1.0))
    if c == 0x66:
        return _parse_literal(j, p, b"false", Token(NUM, num=0.0))
    if c == 0x6E:
        return _parse_literal(j, p, b"null", Token(NULL))
    if c in _DIGITS or c in (0x2D, 0x2B):
        return _parse_number(j, p)
    return None


def _seek_field(j: bytes, field: bytes) -> int | None:
    p = _skip_ws(j, 0)
    n = len(j)
    if p >= n or j[p] != 0x7B:
        return None
    p += 1
    while True:
        p = _skip_ws(j, p)
        if p >= n or j[p] == 0x7D or j[p] != 0x22:
            return None
        key_end = _skip_string(j, p)
        if key_end is None:
            return None
        match = j[p + 1 : key_end - 1] == field
        p = _skip_ws(j, key_end)
        if p >= n or j[p] != 0x3A:
            return None
        p = _skip_ws(j, p + 1)
        if p >= n:
            return None
        if match:
            return p
        q = _skip_value(j, p)
        if q is None:
            return None
        p = _skip_ws(j, q)
        if p >= n or j[p] != 0x2C:
            return None
        p += 1


def json_extract_field(json: bytes, field: bytes) -> Token | None:
    """`jsonExtractField`: the top-level `field` of `json` as a token, or None."""
    p = _seek_field(json, field)
    if p is None:
        return None
    r = _parse_value(json, p)
    return None if r is None else r[0]
