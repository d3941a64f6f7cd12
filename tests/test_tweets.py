"""Tweet normalisation: each step alone, the switches, and the inspection command."""

from hf_tasks.text.tweets import TweetNormalizer, main

ALL_OFF = dict(
    unescape_html=False, replace_urls=False, replace_mentions=False, demojize=False, collapse_whitespace=False
)


def only(step: str, **options) -> TweetNormalizer:
    return TweetNormalizer(**{**ALL_OFF, step: True, **options})


def test_emoji_become_their_names_without_merging_with_words():
    assert only("demojize")("masks work😷") == "masks work :face_with_medical_mask: "
    assert TweetNormalizer()("Stay home 🏠🙏") == "Stay home :house: :folded_hands:"


def test_urls_become_placeholders_including_bare_www_links():
    normalize = only("replace_urls", url_token="HTTPURL")
    assert normalize("see https://t.co/AbC123 now") == "see  HTTPURL  now"
    assert TweetNormalizer()("read www.who.int/covid-19, and HTTP://X.co/a?b=1") == (
        "read twitterurl and twitterurl"
    )


def test_mentions_become_placeholders_but_emails_stay():
    normalize = TweetNormalizer(mention_token="@USER")
    assert normalize("RT @WHO: thanks @dr_fauci_2020!") == "RT @USER : thanks @USER !"
    assert normalize("write to info@cdc.gov") == "write to info@cdc.gov"


def test_url_containing_at_sign_is_one_url_not_a_mention():
    assert TweetNormalizer()("https://medium.com/@someone/post") == "twitterurl"


def test_html_entities_are_unescaped_before_emoji_are_named():
    assert only("unescape_html")("Q&amp;A &lt;3") == "Q&A <3"
    assert TweetNormalizer()("lol &#128514;") == "lol :face_with_tears_of_joy:"


def test_whitespace_and_newlines_collapse_to_single_spaces():
    assert only("collapse_whitespace")("  line one\n\nline\ttwo \r\n") == "line one line two"


def test_every_step_can_be_switched_off():
    tweet = "@a 😷 &amp; https://t.co/x\n"
    assert TweetNormalizer(**ALL_OFF)(tweet) == tweet
    assert "😷" in TweetNormalizer(demojize=False)(tweet)
    assert "@a" in TweetNormalizer(replace_mentions=False)(tweet)
    assert "https://t.co/x" in TweetNormalizer(replace_urls=False)(tweet)
    assert "&amp;" in TweetNormalizer(unescape_html=False)(tweet)
    assert "\n" in TweetNormalizer(collapse_whitespace=False)(tweet)


def test_inspection_command_prints_original_and_normalised_text(capsys):
    main(["--text", "hi @bob 😷", "--no_demojize"])
    printed = capsys.readouterr().out
    assert "original:   'hi @bob 😷'" in printed
    assert "normalised: 'hi twitteruser 😷'" in printed
