"""What ``--on`` accepts (no cluster needed)."""

import pytest

from engine.distributed.cluster import parse_target
from engine.errors import ParameterError


@pytest.mark.parametrize("text, address", [("ray", "local"), ("local", "local"), ("auto", "auto"),
                                           ("ray://head:10001", "ray://head:10001"), ("10.0.0.5:6379", "10.0.0.5:6379"),
                                           ("[::1]:6379", "[::1]:6379")])
def test_on_names_a_local_cluster_or_an_address(text, address):
    assert parse_target(text) == address


@pytest.mark.parametrize("text", ["", "rai", "ray://", "ray://head", "http://head:6379", "head:port"])
def test_anything_else_is_a_parameter_error_naming_the_forms(text):
    with pytest.raises(ParameterError, match="ray://HOST:PORT"):
        parse_target(text)
