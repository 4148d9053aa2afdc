import pytest
from hypothesis import given
from hypothesis import strategies as st

from virtabstract import URL
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
