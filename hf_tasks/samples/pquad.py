"""A small PQuAD-format (SQuAD v2 JSON) sample in Persian, written by this project.

Short biographies built from templates, with questions about a birth year, a home city, a job, a
workplace or a book, and questions the paragraph cannot answer (about a quarter, as in PQuAD).
Sentences come in random order and each paragraph also mentions a second person, so a model has to
read the question to find the span. Years are written in Persian or ASCII digits and several names
carry a zero-width non-joiner, as real Persian text does.

`python -m hf_tasks.samples.pquad` rewrites `hf_tasks/samples/pquad/*.json` and the tiny model folder
`hf_tasks/samples/tiny-bert-fa/` (config + tokenizer trained on the sample).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SAMPLES = Path(__file__).parent
PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")

NAMES = [
    "علی رضایی", "مریم احمدی", "حسین کریمی", "زهرا محمدی", "رضا حسینی", "فاطمه موسوی", "محمد جعفری",
    "سارا کاظمی", "امیر نوری", "نرگس صادقی", "مهدی رحیمی", "لیلا قاسمی", "بهرام یزدانی", "شیرین فرهادی",
    "کاوه تهرانی", "پریسا اکبری", "داریوش مشکینی", "مینا شریفی", "سهراب ملکی", "آزاده نیک‌نام",
]
CITIES = [
    "تهران", "اصفهان", "شیراز", "تبریز", "مشهد", "کرمان", "یزد", "رشت", "همدان", "کاشان", "قزوین",
    "اهواز", "سنندج", "زنجان", "بوشهر", "اردبیل", "گرگان", "بیرجند",
]
JOBS = [
    "پزشک", "معلم", "مهندس", "نقاش", "شاعر", "نویسنده", "خبرنگار", "موسیقی‌دان", "معمار", "پرستار",
    "وکیل", "عکاس", "کتابدار", "داروساز",
]
WORKPLACES = [
    "دانشگاه تهران", "بیمارستان سینا", "کتابخانه ملی", "موزه هنرهای معاصر", "دانشگاه صنعتی شریف",
    "مدرسه البرز", "فرهنگستان زبان و ادب فارسی", "رادیو فرهنگ", "بیمارستان نمازی", "دانشگاه فردوسی",
]
BOOKS = [
    "سایه‌های شهر", "باران پاییزی", "راه کوهستان", "دریای آرام", "خانه‌های قدیمی", "نامه‌های سبز",
    "آواز کویر", "چراغ‌های دور", "باغ انار", "شب‌های بی‌ستاره",
]

# (question template, slot) pairs; slot None means the paragraph never says it.
QUESTIONS = [
    ("{name} در چه سالی متولد شد؟", "year"),
    ("زادگاه {name} کدام شهر است؟", "city"),
    ("شغل {name} چه بود؟", "job"),
    ("{name} در کجا کار می‌کرد؟", "workplace"),
    ("نام مشهورترین کتاب {name} چیست؟", "book"),
    ("{name} در چه سالی درگذشت؟", None),
    ("همسر {name} چه نام داشت؟", None),
]


def _year(rng: random.Random) -> str:
    year = str(rng.randint(1300, 1385))
    return year.translate(PERSIAN_DIGITS) if rng.random() < 0.7 else year


def _biography(rng: random.Random, name: str) -> dict[str, str]:
    facts = {
        "year": _year(rng),
        "city": rng.choice(CITIES),
        "job": rng.choice(JOBS),
        "workplace": rng.choice(WORKPLACES),
    }
    if rng.random() < 0.6:
        facts["book"] = rng.choice(BOOKS)
    return facts


def _sentences(name: str, facts: dict[str, str], rng: random.Random) -> list[tuple[str, str | None]]:
    """(sentence, slot it states) pairs; sentences of the second person state no asked slot."""
    sentences = [
        (f"{name} در سال {facts['year']} متولد شد.", "year"),
        (f"زادگاه {name} شهر {facts['city']} است.", "city"),
        (f"{name} سال‌ها به عنوان {facts['job']} فعالیت کرد.", "job"),
        (f"محل کار {name} {facts['workplace']} بود.", "workplace"),
    ]
    if "book" in facts:
        sentences.append((f"مشهورترین کتاب {name} «{facts['book']}» نام دارد.", "book"))
    rng.shuffle(sentences)
    return sentences


def make_paragraph(rng: random.Random, paragraph_id: str) -> dict:
    """One SQuAD v2 paragraph with its questions (answer offsets computed, never typed by hand)."""
    name, other = rng.sample(NAMES, 2)
    facts = _biography(rng, name)
    other_facts = _biography(rng, other)
    own = _sentences(name, facts, rng)
    distractors = [
        (f"{other} نیز در سال {other_facts['year']} در شهر {other_facts['city']} به دنیا آمد.", None),
        (f"{other} مدتی {other_facts['job']} بود.", None),
    ]
    ordered = own[:2] + distractors[:1] + own[2:] + distractors[1:]
    context = " ".join(sentence for sentence, _ in ordered)
    qas = []
    for number, (template, slot) in enumerate(QUESTIONS):
        question = template.format(name=name)
        if slot is None or slot not in facts:
            answers, impossible = [], True
        else:
            text = facts[slot]
            sentence = next(sentence for sentence, stated in ordered if stated == slot)
            start = context.index(sentence) + sentence.index(text)
            answers = [{"text": text, "answer_start": start}]
            if slot == "year":
                answers.append({"text": f"سال {text}", "answer_start": start - len("سال ")})
            if slot == "book":
                answers.append({"text": f"«{text}»", "answer_start": start - 1})
            impossible = False
        qas.append({"id": f"{paragraph_id}-q{number}", "question": question, "answers": answers,
                    "is_impossible": impossible})
    return {"context": context, "qas": qas}


def make_split(n_paragraphs: int, seed: int, prefix: str, questions_per_paragraph: int = 5) -> dict:
    """A SQuAD v2 JSON document with `n_paragraphs` paragraphs and a sample of their questions."""
    rng = random.Random(seed)
    data = []
    for index in range(n_paragraphs):
        paragraph = make_paragraph(rng, f"{prefix}{index:04d}")
        paragraph["qas"] = rng.sample(paragraph["qas"], questions_per_paragraph)
        data.append({"title": f"زندگی‌نامه {index + 1}", "paragraphs": [paragraph]})
    return {"version": "pquad-sample-1.0", "data": data}


def write_splits(folder: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, Path]:
    """Write train/validation/test JSON files of the given paragraph counts into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for offset, (split, size) in enumerate(sizes.items()):
        path = folder / f"{split}.json"
        document = make_split(size, seed + offset, prefix=f"{split}-")
        path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
        paths[split] = path
    return paths


def sample_texts(document: dict) -> list[str]:
    """Every context and question of a SQuAD v2 document, for training a tokenizer."""
    texts = []
    for article in document["data"]:
        for paragraph in article["paragraphs"]:
            texts.append(paragraph["context"])
            texts.extend(qa["question"] for qa in paragraph["qas"])
    return texts


def main() -> None:
    from hf_tasks.samples.tiny_models import write_tiny_bert

    paths = write_splits(SAMPLES / "pquad", {"train": 120, "validation": 24, "test": 24})
    document = json.loads(paths["train"].read_text(encoding="utf-8"))
    folder = write_tiny_bert(
        SAMPLES / "tiny-bert-fa", sample_texts(document), vocab_size=1000, hidden_size=128, num_hidden_layers=3
    )
    print(f"wrote {', '.join(str(path) for path in paths.values())} and {folder}")


if __name__ == "__main__":
    main()
