import pytest
from hypothesis import given
from hypothesis import strategies as st

from virtabstract import URL, option_bool, option_seconds
from virtabstract.errors import InvalidURL


@pytest.mark.parametrize(
    ("text", "scheme", "driver", "transport", "user", "host", "port", "path"),
    [
        ("qemu:///system", "qemu", "qemu", None, None, "", None, "/system"),
        ("qemu+ssh://root@kvm1/system", "qemu+ssh", "qemu", "ssh", "root", "kvm1", None, "/system"),
        ("test:///default", "test", "test", None, None, "", None, "/default"),
        ("esx://esx1:8443/", "esx", "esx", None, None, "esx1", 8443, "/"),
        ("vpx://admin@vc.example/DC1/Cluster", "vpx", "vpx", None, "admin", "vc.example", None, "/DC1/Cluster"),
        ("vbox:///session", "vbox", "vbox", None, None, "", None, "/session"),
        ("mock://", "mock", "mock", None, None, "", None, ""),
        ("mock:///tmp/lab.json", "mock", "mock", None, None, "", None, "/tmp/lab.json"),
        ("qemu+tcp://[::1]:16509/system", "qemu+tcp", "qemu", "tcp", None, "::1", 16509, "/system"),
        ("QEMU:///system", "qemu", "qemu", None, None, "", None, "/system"),
    ],
)
def test_parse(text, scheme, driver, transport, user, host, port, path):
    url = URL.parse(text)
    assert (url.scheme, url.driver, url.transport, url.username, url.host, url.port, url.path) == (
        scheme,
        driver,
        transport,
        user,
        host,
        port,
        path,
    )


def test_query_options_and_flags():
    url = URL.parse("esx://esx1/?no_verify=1&ca_file=/etc/ca.pem&x=no")
    assert url.option("ca_file") == "/etc/ca.pem"
    assert url.flag("no_verify") is True
    assert url.flag("x") is False
    assert url.flag("missing") is False
    with pytest.raises(InvalidURL, match="ca_file"):
        url.flag("ca_file")


def test_password_is_masked_everywhere():
    url = URL.parse("esx://root:CanaryPw-9f2@esx1/")
    assert url.password == "CanaryPw-9f2"
    for text in (str(url), repr(url), f"{url}", url.render()):
        assert "CanaryPw-9f2" not in text
        assert "***" in text
    assert "CanaryPw-9f2" in url.render(hide_password=False)


def test_special_characters_in_credentials_round_trip():
    url = URL.parse("esx://do%40main%5Cuser:p%40ss%3Aw%2Fd@esx1/")
    assert url.username == "do@main\\user"
    assert url.password == "p@ss:w/d"
    assert URL.parse(url.render(hide_password=False)) == url


def test_immutable_and_set():
    url = URL.parse("qemu:///system")
    with pytest.raises(AttributeError):
        url.host = "x"  # type: ignore[misc]
    other = url.set(host="kvm2", query={"a": "1"})
    assert other.host == "kvm2" and other.option("a") == "1"
    assert url.host == ""
    assert hash(url) != hash(other)


def test_windows_drive_path():
    assert URL.parse("mock:///C:/labs/lab.json").local_path == "C:/labs/lab.json"
    assert URL.parse("mock:///tmp/lab.json").local_path == "/tmp/lab.json"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "qemu",
        "://x",
        "1abc://x",
        "qemu+ssh+x://h/",
        "esx://h:0/",
        "esx://h:99999/",
        "esx://h:ab/",
        "esx://[::1/",
    ],
)
def test_invalid(bad):
    with pytest.raises(InvalidURL):
        URL.parse(bad)


def test_invalid_url_message_masks_password():
    with pytest.raises(InvalidURL) as info:
        URL.parse("esx//root:CanaryPw-9f2@esx1/")
    assert "CanaryPw-9f2" not in str(info.value)


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@given(user=_text, password=_text, host=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))
def test_round_trip_and_never_leaks(user, password, host):
    url = URL(scheme="esx", username=user, password=password, host=host, path="/")
    again = URL.parse(url.render(hide_password=False))
    assert again.username == user
    assert again.password == password
    if len(password) >= 4 and password not in "esx://***@/" + host + user:
        assert password not in repr(url)


# -- connect option values (shared by every backend) -----------------------------------------------

BOOL_CASES = [
    (True, True), (False, False), ("1", True), ("yes", True), ("ON", True), ("", True),
    ("0", False), ("false", False), (" Off ", False), ("no", False),
]  # fmt: skip


@pytest.mark.parametrize(("value", "expected"), BOOL_CASES)
def test_option_bool(value: object, expected: bool) -> None:
    assert option_bool("events", value) is expected


@pytest.mark.parametrize("value", ["maybe", "2", "tru", None])
def test_option_bool_names_the_option(value: object) -> None:
    with pytest.raises(InvalidURL, match=r"option events=.*not a boolean"):
        option_bool("events", value)


@pytest.mark.parametrize(("value", "expected"), [("30", 30.0), (2.5, 2.5), (1, 1.0), (" 0.25 ", 0.25)])
def test_option_seconds(value: object, expected: float) -> None:
    assert option_seconds("timeout", value) == expected


@pytest.mark.parametrize("value", ["abc", "", "0", 0, -5, "inf", "nan", True, None, [1]])
def test_option_seconds_rejects_what_is_not_a_positive_duration(value: object) -> None:
    with pytest.raises(InvalidURL, match=r"option timeout=.*positive number of seconds"):
        option_seconds("timeout", value)


def test_url_flag_uses_the_same_rule() -> None:
    url = URL.parse("mock:///?verify=off&bad=perhaps")
    assert url.flag("verify") is False
    assert url.flag("missing", default=True) is True
    with pytest.raises(InvalidURL, match="bad="):
        url.flag("bad")


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), (0, 0.0), ("0.5", 0.5)])
def test_option_seconds_may_allow_zero(value: object, expected: float) -> None:
    assert option_seconds("agent_delay", value, allow_zero=True) == expected


@pytest.mark.parametrize("value", ["-1", "inf", "x", False])
def test_option_seconds_allowing_zero_still_rejects_the_rest(value: object) -> None:
    with pytest.raises(InvalidURL, match=r"option agent_delay=.*non-negative number of seconds"):
        option_seconds("agent_delay", value, allow_zero=True)
