"""One redaction rule for everything the toolkit prints or stores: tokens and passwords never reach a
log, a config, a table or a tracker.

Secrets are the values of `SECRET_FIELDS` (as config keys or as `--flag value` / `--flag=value` on a
command line), Hugging Face tokens wherever they appear (`hf_...`), and the password of any URL
(`postgresql://user:password@host/db`).

A secret flag is recognised also when abbreviated (`--hub_tok`), since argparse accepts any unambiguous
prefix of a long option: redaction does not depend on abbreviations being turned off.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Iterable

# Fields never written to config.yaml, results, study files or model cards.
SECRET_FIELDS = frozenset({"hub_token", "token", "push_to_hub_token", "wandb_api_key", "hf_token"})
HIDDEN = "***"

# user:password@ in any scheme://, read as SQLAlchemy's make_url reads it: the user up to the first ':', the
# password on to an '@' (so it may hold '/'), here to the last '@' of the word, so a password holding an
# unescaped '@' is hidden whole too. The user stays, so a reader still knows which account was used.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*):(?P<password>\S*)@")
#: The shortest abbreviation of a secret flag taken as one (`--to` is another command's flag).
_SHORTEST_ABBREVIATION = 3
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")


def redact_text(text: str) -> str:
    """`text` with URL passwords and Hugging Face tokens replaced by `***`."""
    text = _URL_PASSWORD.sub(lambda match: f"{match['head']}:{HIDDEN}@", text)
    return _HF_TOKEN.sub(HIDDEN, text)


def secret_field(argument: str) -> str | None:
    """The secret field a `--flag` / `--flag=value` argument names or abbreviates (`--hub_tok`: hub_token)."""
    if not argument.startswith("--"):
        return None
    name = argument[2:].split("=", 1)[0].replace("-", "_")
    if name in SECRET_FIELDS:
        return name
    # an abbreviation breaks off inside a word: --push_to_hub is a flag of its own, --hub_tok is hub_token
    spelled = [field for field in SECRET_FIELDS if field.startswith(name) and field[len(name)] != "_"]
    return spelled[0] if len(name) >= _SHORTEST_ABBREVIATION and len(spelled) == 1 else None


def redact_arguments(arguments: Iterable[str]) -> list[str]:
    """A command line with the value of every secret flag hidden, and URL passwords and tokens in any
    other argument too."""
    redacted: list[str] = []
    hide_next = False
    for argument in arguments:
        argument = str(argument)
        if hide_next:
            redacted.append(HIDDEN)
            hide_next = False
        elif secret_field(argument) and "=" in argument:
            redacted.append(argument.split("=", 1)[0] + "=" + HIDDEN)
        elif secret_field(argument):
            redacted.append(argument)
            hide_next = True
        else:
            redacted.append(redact_text(argument))
    return redacted


def redact_mapping(values: dict[str, Any]) -> dict[str, Any]:
    """A config mapping without its secret fields, and with URL passwords and tokens hidden in the rest."""
    kept = {}
    for name, value in values.items():
        if name in SECRET_FIELDS:
            continue
        if isinstance(value, str):
            value = redact_text(value)
        elif isinstance(value, list):
            value = [redact_text(item) if isinstance(item, str) else item for item in value]
        elif isinstance(value, dict):
            value = redact_mapping(value)
        kept[name] = value
    return kept


def shown(command: Iterable[str]) -> str:
    """A command line as it is printed and logged: shell-quoted, secrets hidden."""
    return shlex.join(redact_arguments(command))
