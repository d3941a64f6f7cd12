import pytest

from hf_tasks.text.persian import normalize_persian


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("علي", "علی"),  # Arabic yeh
        ("مصطفى", "مصطفی"),  # alef maksura
        ("كتاب", "کتاب"),  # Arabic kaf
        ("مدرسة", "مدرسه"),  # teh marbuta
        ("أحمد", "احمد"),
        ("إسلام", "اسلام"),
        ("ٱلله", "الله"),
        ("مؤمن", "مومن"),
        ("خانۀ من", "خانه من"),  # ezafe heh
        ("خانهٔ من", "خانه من"),  # heh + hamza above written as a diacritic
        ("آب و آتش", "آب و آتش"),  # madda alef stays
        ("ا\u0653ب", "آب"),  # decomposed madda composes instead of being dropped
    ],
)
def test_letter_variants(raw, normalised):
    assert normalize_persian(raw) == normalised


def test_digits_become_ascii():
    assert normalize_persian("سال ۱۴۰۲") == "سال 1402"
    assert normalize_persian("عام ٢٠٢٣") == "عام 2023"
    assert normalize_persian("۰۱۲۳۴۵۶۷۸۹") == "0123456789"


def test_diacritics_and_tatweel_are_dropped():
    assert normalize_persian("مُحَمَّد") == "محمد"
    assert normalize_persian("کتاباً") == "کتابا"
    assert normalize_persian("بـــزرگ") == "بزرگ"
    assert normalize_persian("هٰذا") == "هذا"  # superscript alef


def test_joiners_and_bidi_marks_are_dropped():
    assert normalize_persian("می\u200cروم") == "میروم"
    assert normalize_persian("کتاب\u200cها") == normalize_persian("کتابها")
    assert normalize_persian("\u200fسلام\u200e \u202bدنیا\u202c\ufeff") == "سلام دنیا"


def test_punctuation_becomes_ascii():
    assert normalize_persian("سلام، خوبی؟") == "سلام, خوبی?"
    assert normalize_persian("«تهران»؛ پایتخت") == '"تهران"; پایتخت'
    assert normalize_persian("۵٪") == "5%"
    assert normalize_persian("۳٫۱۴") == "3.14"
    assert normalize_persian("۱٬۰۰۰") == "1,000"


def test_presentation_forms_fold_to_letters():
    assert normalize_persian("\ufecb\ufee0\ufef2") == "علی"  # ﻋﻠﻲ


def test_other_text_is_untouched_and_normalising_twice_changes_nothing():
    assert normalize_persian("Hello, World 42!") == "Hello, World 42!"
    sentence = "دانشگاه صنعتيِ شريف در سال ۱۳۴۴ تأسیس شد؛ «آریامهر» نام پیشین آن بود."
    once = normalize_persian(sentence)
    assert once == 'دانشگاه صنعتی شریف در سال 1344 تاسیس شد; "آریامهر" نام پیشین آن بود.'
    assert normalize_persian(once) == once
