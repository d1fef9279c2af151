"""Credentials out of every message: URIs, ``key=value`` pairs and settings whose names say they are secret.

Used by the config loader (validation errors), the CLI (every ``error:`` line, every URI it prints)
and the log records of every entry point (``flows.runtime.install_log_masking``).
"""

from __future__ import annotations

import re


SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "credential", "credentials",
                "private_key", "access_key", "secret_key")
_URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s'\"]*):(?P<password>[^@\s'\"]+)@")
_ASSIGNMENT = re.compile(
    r"(?<![\w./\-])(?P<key>[A-Za-z_][\w\-]*)(?P<sep>['\"]?\s*[:=]\s*['\"]?)(?P<value>(?!//)[^\s,'\"}&)\]]+)")
_INPUT_VALUE = re.compile(r"(?P<key>\[?\s*type=\w+,\s*input_value=)(?P<value>'[^']*'|\"[^\"]*\"|[^,\]]+)")
MASK = "***"


def mask(text) -> str:
    """``text`` with credentials replaced by ``***``.

    >>> mask("postgresql://lowlm:s3cret@db:5432/mlflow failed")
    'postgresql://lowlm:***@db:5432/mlflow failed'
    >>> mask("db_password: hunter2, user=bob; /x/secret.yaml: invalid")
    'db_password: ***, user=bob; /x/secret.yaml: invalid'
    >>> mask("http://host/api?token=abc&x=1")
    'http://host/api?token=***&x=1'
    """
    text = str(text)
    text = _URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _ASSIGNMENT.sub(lambda m: f"{m['key']}{m['sep']}{MASK}" if is_secret_name(m["key"]) else m[0], text)


def is_secret_name(name: str) -> bool:
    """Whether a setting's name says it holds a secret: one of its ``_``/``-``/``.`` parts is a secret word.

    >>> [is_secret_name(n) for n in ("db_password", "access-token", "tokenizer", "max_source_tokens")]
    [True, True, False, False]
    """
    parts = re.split(r"[_\-.]", name.lower())
    joined = name.lower().replace("-", "_")
    return any(p in SECRET_WORDS for p in parts) or any(w in joined for w in SECRET_WORDS if "_" in w)


def mask_validation_error(text: str) -> str:
    """A pydantic message with the input values of secret-named fields masked (``mask``), and every
    ``input_value`` of a line that names a secret field hidden."""
    lines, hide = [], False
    for line in str(text).splitlines():
        if not line.startswith(" "):  # a field's location line: "db_password" / "corpus.token"
            hide = any(is_secret_name(part) for part in line.strip().split("."))
        elif hide:
            line = _INPUT_VALUE.sub(lambda m: f"{m['key']}{MASK}", line)
        lines.append(mask(line))
    return "\n".join(lines)
