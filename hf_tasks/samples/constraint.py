"""A small English tweet sample in the Constraint@AAAI-2021 format (id, tweet, label real/fake),
written by this project.

Real tweets read like health-agency updates (case counts, study results, advice); fake ones like
viral misinformation (miracle cures, 5G, hidden truths, "share before they delete it"). Both
classes carry emoji, URLs, @mentions, hashtags, HTML entities and line breaks, so none of those
alone gives the label away; a few tweets are very long, and 4% of labels are flipped, as real
annotations are never perfectly clean.

`python -m hf_tasks.samples.constraint` rewrites `hf_tasks/samples/constraint/*.csv` and the tiny
model folder `hf_tasks/samples/tiny-bert-en/` (config + tokenizer trained on the sample).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SAMPLES = Path(__file__).parent
SPLIT_SIZES = {"train": 480, "validation": 160, "test": 160}
LABEL_NOISE = 0.04

PLACES = ["Texas", "Kerala", "Ontario", "Lagos", "Lombardy", "New York", "Delhi", "Queensland", "Sao Paulo",
          "Bavaria", "Cape Town", "Manila", "Tokyo", "Madrid", "Punjab", "Nairobi"]
MENTIONS = ["@CDCgov", "@WHO", "@MoHFW_INDIA", "@NCDCgov", "@nytimes", "@BBCBreaking", "@covid19india",
            "@john_doe42", "@TruthSeeker77", "@maria_k", "@HealthNewsDaily"]
SHARED_EMOJI = ["😷", "🙏", "👇", "🌍", "💉", "🏠", "❤️", "👍"]
SHARED_TAGS = ["#COVID19", "#coronavirus", "#StayHome", "#pandemic", "#Covid_19"]

REAL = [
    "{number} new cases of {tag} were reported in {place} today, with {small} deaths. {url}",
    "Our daily update: {number} tests done and {small} people confirmed positive in {place}. {emoji} {url}",
    "A peer-reviewed study of {number} patients found that {finding}. Full paper: {url}",
    "{mention} Testing sites in {place} are open from 9am to 5pm this week.\nBook a slot online: {url}",
    "Reminder: {advice}. It protects you and the people around you {emoji}",
    "Hospital admissions in {place} fell by {percent}% over the last 14 days, officials said &amp; thanked staff.",
    "Vaccination update: {number} doses given in {place} so far. Check eligibility at {url}",
    "The health department of {place} recommends that {advice}. {tag}",
    "Data from {number} households in {place} show that {finding}. {mention} {url}",
]
FAKE = [
    "BREAKING!!! {claim} {alarm} share before they delete it {url}",
    "{mention} wake up! {claim}. The media will never tell you this {alarm}",
    "Doctors are hiding that {cure} cures the virus in {hours} hours. My cousin in {place} tried it {emoji}",
    "They don't want you to know: {claim}!!! {tag} #plandemic",
    "A nurse from {place} leaked it:\n{claim}.\nForward to everyone you love {emoji} {url}",
    "Just drink {cure} every morning and you will never catch corona. 100% natural, big pharma hates it {alarm}",
    "{claim}. Do your own research before it is too late!! {mention}",
    "Government insider confirms {claim}. Mainstream news is silent &amp; deleting posts {alarm} {url}",
]
FINDINGS = ["masks reduce transmission indoors", "most infections came from household contacts",
            "vaccinated adults were less likely to need hospital care", "symptoms usually appear within five days",
            "ventilation lowers the risk in classrooms", "older patients needed intensive care more often"]
ADVICE = ["wash your hands for 20 seconds", "wear a mask on public transport", "keep two metres apart in queues",
          "stay home if you have a fever", "get tested when you have symptoms", "open windows when guests visit"]
CLAIMS = ["5G towers are spreading the virus", "the vaccine changes your DNA", "the virus was never real",
          "hospitals are paid to fake covid deaths", "masks make you breathe poison", "the lockdown is a plan to "
          "control the world", "bill gates put microchips in the vaccine", "the virus cannot survive hot tea"]
CURES = ["garlic water", "hot lemon tea", "bleach", "cow urine", "vitamin C megadoses", "onion juice",
         "colloidal silver"]
ALARM = ["😱", "🚨", "‼️", "🔥", "😡", "⚠️"]
URLS = ["https://t.co/{code}", "http://bit.ly/{code}", "www.example-news.com/{code}", "https://t.co/{code}?amp=1"]


def _code(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(10))


def _tweet(rng: random.Random, fake: bool) -> str:
    template = rng.choice(FAKE if fake else REAL)
    text = template.format(
        number=f"{rng.randint(120, 98000):,}",
        small=rng.randint(0, 90),
        percent=rng.randint(3, 40),
        hours=rng.choice([12, 24, 48]),
        place=rng.choice(PLACES),
        mention=rng.choice(MENTIONS),
        emoji=rng.choice(SHARED_EMOJI),
        tag=rng.choice(SHARED_TAGS),
        url=rng.choice(URLS).format(code=_code(rng)),
        finding=rng.choice(FINDINGS),
        advice=rng.choice(ADVICE),
        claim=rng.choice(CLAIMS),
        cure=rng.choice(CURES),
        alarm=rng.choice(ALARM),
    )
    if rng.random() < 0.3:
        text += f" {rng.choice(SHARED_TAGS)}"
    if rng.random() < 0.15:
        text = f"{rng.choice(MENTIONS)} " + text
    if rng.random() < 0.03:  # a long thread pasted into one tweet, as the real data has
        text += "\n\n" + " ".join(_tweet(rng, fake) for _ in range(6))
    return text


def sample_rows(split: str, size: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(f"{seed}-{split}")
    rows = []
    for index in range(size):
        fake = rng.random() < 0.47  # Constraint is 52% real / 48% fake
        label = fake if rng.random() >= LABEL_NOISE else not fake
        rows.append({"id": str(index + 1), "tweet": _tweet(rng, fake), "label": "fake" if label else "real"})
    return rows


def write_sample(folder: Path = SAMPLES / "constraint", seed: int = 13) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, size in SPLIT_SIZES.items():
        path = folder / f"{split}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["id", "tweet", "label"])
            writer.writeheader()
            writer.writerows(sample_rows(split, size, seed))
        paths[split] = path
    return paths


def main() -> None:
    from hf_tasks.samples.tiny_models import write_tiny_bert
    from hf_tasks.data.tables import read_table
    from hf_tasks.text.tweets import TweetNormalizer

    paths = write_sample()
    normalize = TweetNormalizer()
    texts = [normalize(row.values["tweet"]) for row in read_table(paths["train"])]
    folder = write_tiny_bert(SAMPLES / "tiny-bert-en", texts, vocab_size=1000, hidden_size=64,
                             num_hidden_layers=2, num_attention_heads=4)
    print(f"wrote {', '.join(str(path) for path in paths.values())} and {folder}")


if __name__ == "__main__":
    main()
