"""Models describe themselves: ``attention_maps`` (what evaluation and reports show) and the
allowed values of GLFNet's string options (``typing.Literal`` aliases, spelled once)."""

from __future__ import annotations

import typing

import pytest
import torch

from glfnet.models import create_model
from glfnet.models import glfnet as G
from glfnet.models.ensemble import Ensemble


def _maps(model, n=3):
    torch.manual_seed(0)
    model.eval()
    return model.attention_maps(torch.randn(n, 3, 28, 28))


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        ({}, {"global", "regions", "fusion"}),
        ({"local_branch": False}, {"global"}),
        ({"global_branch": False}, {"regions"}),
        ({"fusion": "concat"}, {"global", "regions"}),
        ({"region_gate": False}, {"global", "fusion"}),
    ],
    ids=lambda v: str(v),
)
def test_attention_maps_hold_what_the_variant_has(args, keys):
    model = create_model("glfnet_s", **args)
    maps = _maps(model)
    assert set(maps) == keys
    if "regions" in maps:
        assert maps["regions"].shape == (3, 4)
    if "fusion" in maps:
        assert maps["fusion"].shape == (3, 2)
    if "global" in maps:
        assert maps["global"].ndim == 3 and maps["global"].shape[0] == 3
    assert not any(getattr(m, "keep_maps", False) for m in model.modules())  # switched off again


def test_an_ensemble_shows_its_first_member_and_ststnet_nothing():
    torch.manual_seed(1)
    members = [create_model("glfnet_s") for _ in range(2)]
    ens, first = _maps(Ensemble(members)), _maps(members[0])
    assert set(ens) == set(first) and all(torch.equal(ens[k], first[k]) for k in ens)
    assert _maps(create_model("ststnet")) == {}


def test_string_options_come_from_literal_aliases():
    hints = typing.get_type_hints(G.GLFNet.__init__)
    for name, alias in (
        ("fusion", G.Fusion),
        ("head", G.Head),
        ("stem", G.Stem),
    ):
        assert hints[name] == alias and G.CHOICES[name] == typing.get_args(alias)
    with pytest.raises(ValueError, match=r"fusion must be aff, concat or sum, not 'foo'"):
        G.GLFNet(fusion="foo")
    with pytest.raises(ValueError, match=r"stem must be resnet or shallow"):
        G.GLFNet(stem="dense")
