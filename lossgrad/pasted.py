"""Arrays as numpy and PyTorch print them, pasted into --target/--pred: read as lossgrad's own inline syntax.

    [[0.1, 0.9], [0.8, 0.2]]            a Python list, or numpy's repr
    [[0.1 0.9]                          numpy's print (no commas), over several lines
     [0.8 0.2]]
    array([1., 2.], dtype=float32)      numpy's repr, with its keyword arguments
    tensor([[0.1000, 0.9000],           PyTorch's, with dtype=, device=, requires_grad=, grad_fn=
            [0.8000, 0.2000]], dtype=torch.float64)

become '0.1,0.9;0.8,0.2'. Text that is not bracketed is left as it is.
"""

from __future__ import annotations

import re

from .errors import InputError

_WRAPPER = re.compile(r"^\s*(?:np\.|numpy\.|torch\.)?(?:array|tensor|asarray|as_tensor)\(\s*", re.I)
_ROWS = re.compile(r"\]\s*,?\s*\[")


def unpaste(text: str, option: str) -> str:
    """`text` in the inline syntax ('1,2;3,4') if it is a pasted array, else `text` itself."""
    body = text.strip()
    wrapped = _WRAPPER.match(body)
    if wrapped:
        body = _inside_call(body[wrapped.end():])
    if not body.startswith("["):
        return text
    if "..." in body or "…" in body:
        raise InputError(option, "is an array printed in summary ('...'): print it whole "
                                  "(np.set_printoptions(threshold=sys.maxsize), torch.set_printoptions(profile='full'))"
                                  " or pass its numbers")
    depth = _depth(body, option)
    if depth > 2:
        raise InputError(option, f"is an array of {depth} dimensions; give a vector or a matrix (rows of numbers)")
    inner = body[depth:len(body) - depth].strip()
    rows = _ROWS.split(inner) if depth == 2 else [inner]
    text = ";".join(",".join(v for v in re.split(r"[\s,]+", row.strip()) if v) for row in rows)
    return text + ";" if depth == 2 and len(rows) == 1 else text  # (one row is still a matrix)


def _inside_call(rest: str) -> str:
    """The bracketed data of `array(...)` / `tensor(...)`, its keyword arguments and closing parenthesis dropped."""
    if not rest.startswith("["):
        return rest.rstrip(") \n")
    level = 0
    for i, ch in enumerate(rest):
        level += (ch == "[") - (ch == "]")
        if level == 0:
            return rest[: i + 1]
    return rest


def _depth(body: str, option: str) -> int:
    """How deeply the brackets nest, after checking that they balance."""
    level = deepest = 0
    for ch in body:
        level += (ch == "[") - (ch == "]")
        if level < 0:
            break
        deepest = max(deepest, level)
    if level != 0 or not body.endswith("]"):
        raise InputError(option, "has brackets that do not match; paste the whole array, from its first '[' to its "
                                 "last ']'")
    return deepest
