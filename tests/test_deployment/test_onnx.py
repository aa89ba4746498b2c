"""The export graph without exporting: its draws, names and refusals.

The exports themselves (onnxruntime against PyTorch) are in
``tests/test_apis/test_export.py``.
"""
import pytest
import torch

from sta_mmaction.deployment import (ExportError, RecognizerGraph,
                                     example_inputs, random_draws, require)
from sta_mmaction.models import STAViT

TINY = dict(img_size=64, embed_dims=48, depth=3, num_heads=4, num_frames=8)


def vit(**settings):
    torch.manual_seed(0)
    return STAViT(**TINY, **settings).eval()


def test_random_draws_are_those_of_the_seeded_forward():
    """A 'random' graph takes its draws as inputs; fed these, it keeps the
    tokens the seeded eager forward keeps, clip by clip."""
    model = vit(drop_number=4, strategy='random', seed=3)
    clip = torch.randn(2, 3, 8, 64, 64)
    draws = random_draws(model, clip)
    assert [tuple(d.shape) for d in draws] == [(2, 4, 16), (2, 2, 24),
                                               (2, 1, 40)]
    with torch.no_grad():
        want, want_kept = model.forward_pruned(clip)
        got, got_kept = model.forward_pruned(clip, draws)
        _, other_kept = model.forward_pruned(clip, random_draws(
            vit(drop_number=4, strategy='random', seed=4), clip))
    assert torch.equal(got, want)
    assert all(torch.equal(g, w) for g, w in zip(got_kept, want_kept))
    assert not torch.equal(other_kept[0], want_kept[0])


def test_graph_names_follow_what_prunes():
    assert RecognizerGraph(vit()).output_names() == ['scores']
    graph = RecognizerGraph(vit(drop_number=4, strategy='random', seed=0))
    assert graph.input_names() == ['clip', 'draws0', 'draws1', 'draws2']
    assert graph.output_names() == ['scores', 'kept0', 'kept1', 'kept2']
    clip = torch.randn(2, 3, 8, 64, 64)
    assert len(example_inputs(graph, clip)) == 4
    assert example_inputs(RecognizerGraph(vit(drop_number=4)), clip) == (
        clip, )


def test_missing_package_names_the_extra():
    with pytest.raises(ExportError, match=r'pip install -e \.\[deploy\]'):
        require('sta_no_such_package')
