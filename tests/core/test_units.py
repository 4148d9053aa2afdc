import pytest
from hypothesis import given
from hypothesis import strategies as st

from virtabstract import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        (1, 1),
        (4096, 4096),
        ("4096", 4096),
        ("512MiB", 512),
        ("512 MiB", 512),
        ("512m", 512),
        ("512MB", 512),
        ("2GiB", 2048),
        ("2G", 2048),
        ("2gb", 2048),
        ("1.5GiB", 1536),
        ("1TiB", 1024 * 1024),
        ("1024KiB", 1),
        ("1048576 bytes", 1),
        ("1048576b", 1),
        ("2048 MBytes", 2048),
        ("1.50 GBytes", 1536),
        ("2048 MByte", 2048),
    ],
)
def test_parse_size_accepts(text, mib):
    assert parse_size(text) == mib


@pytest.mark.parametrize(
    "bad", ["", "abc", "GiB", "0", 0, -1, "-1GiB", "1.3MiB", "512KiB", "2 XB", "1e3", True, None, 1.5, "1 bytes"]
)
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


@pytest.mark.parametrize(
    ("mib", "text"), [(512, "512MiB"), (1024, "1GiB"), (2048, "2GiB"), (1536, "1536MiB"), (1024**2, "1TiB")]
)
def test_format_size(mib, text):
    assert format_size(mib) == text


@given(st.integers(min_value=1, max_value=2**40))
def test_format_parse_round_trip(mib):
    assert parse_size(format_size(mib)) == mib
