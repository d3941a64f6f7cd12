"""Tweet normalisation shared by the tweet classification task and its inspection command.

Each step can be switched off. The defaults follow the pre-training of COVID-Twitter-BERT, whose
corpus replaced user names and URLs by the words `twitteruser` and `twitterurl`; any other
placeholder can be configured.

Print the exact text a model sees for one example of a CSV file:

    python -m hf_tasks.text.tweets --train_file train.csv --row 12
    python -m hf_tasks.text.tweets --text "RT @who: masks work 😷 https://t.co/x"
"""

from __future__ import annotations

import argparse
import html
import re
from dataclasses import dataclass, fields

import emoji

from hf_tasks.data.tables import read_table
from hf_tasks.errors import OneLineArgumentParser, one_line_errors

# Bump when `TweetNormalizer.__call__` changes what it produces for the same settings (a test holds its source).
NORMALIZATION_VERSION = 1

# Scheme or "www." up to the next whitespace: tweets carry shortened links (t.co) and bare www links.
URL_PATTERN = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# The look-behind keeps e-mail addresses (name@host) intact.
MENTION_PATTERN = re.compile(r"(?<![\w@])@\w+")


@dataclass(frozen=True)
class TweetNormalizer:
    """Callable tweet → normalised text. Steps run in a fixed order (the order of the fields).

    HTML entities go first because scraped tweets carry `&amp;` and numeric entities that may
    encode emoji; URLs go before mentions because a URL may contain "@".
    """

    unescape_html: bool = True
    replace_urls: bool = True
    replace_mentions: bool = True
    demojize: bool = True
    collapse_whitespace: bool = True
    url_token: str = "twitterurl"
    mention_token: str = "twitteruser"

    @classmethod
    def from_options(cls, options) -> "TweetNormalizer":
        """The normaliser described by any object carrying the same attribute names (CLI args, dataclass)."""
        return cls(**{step.name: getattr(options, step.name) for step in fields(cls)})

    def __call__(self, text: str) -> str:
        if self.unescape_html:
            text = html.unescape(text)
        if self.replace_urls:
            text = URL_PATTERN.sub(f" {self.url_token} ", text)
        if self.replace_mentions:
            text = MENTION_PATTERN.sub(f" {self.mention_token} ", text)
        if self.demojize:
            # Spaces around ":name:" keep an emoji that touches a word from merging with it.
            text = emoji.demojize(text, delimiters=(" :", ": "))
        if self.collapse_whitespace:
            text = " ".join(text.split())
        return text

    def cache_key(self) -> tuple:
        """Everything the output depends on, for caches of normalised text: the version, the steps and
        tokens, the patterns and the emoji names (they change with the emoji package)."""
        return (NORMALIZATION_VERSION, repr(self), URL_PATTERN.pattern, URL_PATTERN.flags, MENTION_PATTERN.pattern,
                MENTION_PATTERN.flags, emoji.__version__)


def add_normalizer_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that switch steps off, shared by the inspection command."""
    for name in ("unescape_html", "replace_urls", "replace_mentions", "demojize", "collapse_whitespace"):
        parser.add_argument(f"--no_{name}", dest=name, action="store_false", help=f"Skip the {name} step.")
    parser.add_argument("--url_token", default=TweetNormalizer.url_token)
    parser.add_argument("--mention_token", default=TweetNormalizer.mention_token)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description="Print a tweet before and after normalisation.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="A tweet given on the command line.")
    source.add_argument("--train_file", "--file", dest="file", help="A Constraint-style CSV/TSV file.")
    parser.add_argument("--row", type=int, default=1, help="Data row of --file (1 = first row after the header).")
    parser.add_argument("--text_column", default="tweet")
    add_normalizer_arguments(parser)
    args = parser.parse_args(argv)
    normalize = TweetNormalizer.from_options(args)
    if args.text is not None:
        original = args.text
    else:
        table = read_table(args.file, required_columns=(args.text_column,), column_flags="--text_column")
        if not 1 <= args.row <= len(table):
            parser.error(f"--row {args.row}: {args.file} has data rows 1..{len(table)}.")
        record = table.rows[args.row - 1].values
        print(f"{args.file}, row {args.row}: "
              + ", ".join(f"{k}={v!r}" for k, v in record.items() if k != args.text_column))
        original = record[args.text_column]
    print(f"original:   {original!r}")
    print(f"normalised: {normalize(original)!r}")


if __name__ == "__main__":
    with one_line_errors():
        main()
