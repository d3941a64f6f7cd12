"""A small FarsTail-format NLI sample in Persian, written by this project.

Each premise states facts about a person (home city, job, workplace, a hobby, a year); each hypothesis
is entailed (a fact restated, sometimes paraphrased), contradicted (a fact with another value, or
negated) or neutral (something the premise does not say). Contradictions that swap a value share the
hypothesis wording of entailments, so a model must compare the hypothesis with the premise, not only
read the hypothesis; a tiny model learns it well above chance in a few epochs.

The files follow FarsTail: tab-separated, a header `premise, hypothesis, label` with labels e, c, n;
the test file adds 0/1 columns `hard(hypothesis)` (the hypothesis wording alone does not give the
label away: value-swap contradictions and their entailment twins) and `hard(overlap)` (word overlap
misleads: a contradiction sharing every word but one with the premise, or an entailment paraphrased
with little overlap).

`python -m hf_tasks.samples.farstail` rewrites `hf_tasks/samples/farstail/*.tsv` and the tiny model
folder `hf_tasks/samples/tiny-bert-farstail/` (config + tokenizer trained on the sample).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from hf_tasks.samples.tiny_models import write_tiny_bert

SAMPLES = Path(__file__).parent
FOLDER = SAMPLES / "farstail"
MODEL_FOLDER = SAMPLES / "tiny-bert-farstail"
SIZES = {"train": 900, "validation": 150, "test": 150}
HEADER = ["premise", "hypothesis", "label"]
HARD_HEADER = HEADER + ["hard(hypothesis)", "hard(overlap)"]

NAMES = [
    "علی", "مریم", "حسین", "زهرا", "رضا", "فاطمه", "محمد", "سارا", "امیر", "نرگس", "مهدی", "لیلا",
    "بهرام", "شیرین", "کاوه", "پریسا", "داریوش", "مینا", "سهراب", "آزاده",
]
CITIES = ["تهران", "اصفهان", "شیراز", "تبریز", "مشهد", "کرمان", "یزد", "رشت", "همدان", "کاشان"]
JOBS = ["پزشک", "معلم", "مهندس", "نقاش", "شاعر", "نویسنده", "خبرنگار", "معمار", "پرستار", "وکیل"]
HOBBIES = ["فوتبال", "شنا", "کوهنوردی", "شطرنج", "نقاشی", "موسیقی", "عکاسی", "باغبانی"]
UNSAID = [
    "{name} دو فرزند دارد.", "{name} هر روز صبح ورزش می‌کند.", "{name} به زبان فرانسوی صحبت می‌کند.",
    "پدر {name} کشاورز بود.", "{name} سال گذشته به سفر رفت.", "{name} خانه‌ای بزرگ دارد.",
]


def _premise(person: dict[str, str]) -> str:
    return (f"{person['name']} که در شهر {person['city']} به دنیا آمده است، سال‌ها به عنوان {person['job']} "
            f"کار کرده و در اوقات فراغت به {person['hobby']} می‌پردازد.")


def _entailment(person: dict[str, str], rng: random.Random) -> tuple[str, int]:
    """A restated fact; second value: 1 when paraphrased with little word overlap."""
    name = person["name"]
    choices = [
        (f"{name} در شهر {person['city']} به دنیا آمده است.", 0),
        (f"{name} سال‌ها به عنوان {person['job']} کار کرده است.", 0),
        (f"زادگاه {name} {person['city']} است.", 1),
        (f"شغل {name} {person['job']} بوده است.", 1),
        (f"{name} به {person['hobby']} علاقه دارد.", 1),
    ]
    return rng.choice(choices)


def _contradiction(person: dict[str, str], rng: random.Random) -> tuple[str, int, int]:
    """A fact with another value (hard for hypothesis-only, high overlap) or a negated fact."""
    name = person["name"]
    other_city = rng.choice([city for city in CITIES if city != person["city"]])
    other_job = rng.choice([job for job in JOBS if job != person["job"]])
    choices = [
        (f"{name} در شهر {other_city} به دنیا آمده است.", 1, 1),
        (f"{name} سال‌ها به عنوان {other_job} کار کرده است.", 1, 1),
        (f"زادگاه {name} {other_city} است.", 1, 0),
        (f"{name} هرگز در شهر {person['city']} نبوده است.", 0, 0),
        (f"{name} هیچ‌وقت {person['job']} نبوده است.", 0, 0),
    ]
    return rng.choice(choices)


def make_example(rng: random.Random) -> dict[str, str]:
    """One premise/hypothesis pair with its label and hard-subset marks."""
    person = {"name": rng.choice(NAMES), "city": rng.choice(CITIES), "job": rng.choice(JOBS),
              "hobby": rng.choice(HOBBIES)}
    label = rng.choice("ecn")
    if label == "e":
        hypothesis, paraphrased = _entailment(person, rng)
        hard_hypothesis, hard_overlap = int(hypothesis.endswith("آمده است.") or "به عنوان" in hypothesis), paraphrased
    elif label == "c":
        hypothesis, hard_hypothesis, hard_overlap = _contradiction(person, rng)
    else:
        hypothesis, hard_hypothesis, hard_overlap = rng.choice(UNSAID).format(name=person["name"]), 0, 0
    return {"premise": _premise(person), "hypothesis": hypothesis, "label": label,
            "hard(hypothesis)": str(hard_hypothesis), "hard(overlap)": str(hard_overlap)}


def write_splits(folder: Path = FOLDER, sizes: dict[str, int] = SIZES, seed: int = 0) -> dict[str, Path]:
    """Write train/validation/test TSV files (FarsTail columns; the test file with hard subsets)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for offset, (split, size) in enumerate(sizes.items()):
        rng = random.Random(seed + offset)
        header = HARD_HEADER if split == "test" else HEADER
        path = folder / f"{split}.tsv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(header)
            for _ in range(size):
                example = make_example(rng)
                writer.writerow([example[column] for column in header])
        paths[split] = path
    return paths


def sample_texts(paths: dict[str, Path]) -> list[str]:
    """Every premise and hypothesis of the written files, for training a tokenizer."""
    texts = []
    for path in paths.values():
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                texts += [row["premise"], row["hypothesis"]]
    return texts


def main() -> None:
    paths = write_splits()
    write_tiny_bert(MODEL_FOLDER, sample_texts(paths), vocab_size=400, hidden_size=64, num_hidden_layers=4,
                    num_attention_heads=4, max_position_embeddings=128)
    print(f"Wrote {', '.join(str(path) for path in paths.values())} and {MODEL_FOLDER}")


if __name__ == "__main__":
    main()
