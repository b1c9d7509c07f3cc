import pytest

from service.api.security import check_bind, is_loopback
from service.errors import UnsafeConfiguration
from service.settings import Settings
from tests.conftest import TOKEN


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_non_loopback_hosts(host):
    assert not is_loopback(host)


def test_open_endpoints_on_a_public_bind_are_refused():
    with pytest.raises(UnsafeConfiguration, match="BACKPROP_API_TOKEN"):
        check_bind(Settings(host="0.0.0.0"))


def test_a_token_or_an_explicit_opt_out_allows_it():
    check_bind(Settings(host="0.0.0.0", api_token=TOKEN))
    check_bind(Settings(host="0.0.0.0", allow_insecure=True))
    check_bind(Settings())  # loopback by default
