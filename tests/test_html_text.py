"""Clean text from 4chan comment HTML."""

import pytest
from bizsent.core.collect.html_text import clean_text


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("line one<br>line two<br/>three<BR />four", "line one\nline two\nthree\nfour"),
        ("https://exam<wbr>ple.com/very<wbr>long", "https://example.com/verylong"),
        ('<a href="#p123" class="quotelink">&gt;&gt;123</a><br>agreed', ">>123\nagreed"),
        ('<a href="/g/thread/55#p56" class="quotelink">&gt;&gt;&gt;/g/56</a>', ">>>/g/56"),
        ('<span class="quote">&gt;be me</span><br><span class="quote">&gt;buy top</span>', ">be me\n>buy top"),
        ("it will <s>never</s> moon", "it will never moon"),
        ('<span class="deadlink">&gt;&gt;999</span> deleted', ">>999 deleted"),
        ('<pre class="prettyprint">def f():<br>    return 1</pre>', "def f():\n    return 1"),
        ("it&#039;s &quot;fine&quot; &amp; 5 &lt; 6 &gt; 4", 'it\'s "fine" & 5 < 6 > 4'),
        ('<b>bold</b> <u>under</u> <strong style="color: red;">(USER WAS BANNED FOR THIS POST)</strong>',
         "bold under (USER WAS BANNED FOR THIS POST)"),
        ("<br>  padded  <br><br>", "padded"),
        ("trailing   <br>spaces", "trailing\nspaces"),
        ("&amp;lt;b&amp;gt; stays literal", "&lt;b&gt; stays literal"),
        ("", ""),
        (None, ""),
        ("plain", "plain"),
    ],
)
def test_clean_text(markup: str | None, expected: str) -> None:
    assert clean_text(markup) == expected


def test_greentext_keeps_its_marker_for_the_console() -> None:
    text = clean_text('normal<br><span class="quote">&gt;implying</span>')
    assert text.splitlines()[1].startswith(">")
