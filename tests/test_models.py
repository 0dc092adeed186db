"""The model registry: every architecture builds, has the expected size and can learn."""

from __future__ import annotations

import pytest
import torch

from earmark.errors import ConfigError
from earmark.frontend.speech_embedding import depth
from earmark.models import available_models, build_model, count_parameters

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, and leave the other core alone."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


#: (channels, bands, frames) that every architecture accepts, but for those below.
SHAPES = [(1, 40, 98), (2, 32, 64), (1, 16, 16)]
#: The causal TCN reads the micro front-end: one channel, at least its receptive field;
#: the embedding head the speech embedding's 96 numbers a column.
OWN_SHAPES = {"tcn": [(1, 40, 98), (1, 40, 150)], "embedding_mlp": [(1, 96, 16), (1, 96, 3)],
              "embedding_ensemble": [(1, 96, 16), (1, 96, 3)],
              "embedding_linear": [(1, 96, 16), (1, 4096, 1)],
              "column_cnn": [(1, 384, 67), (1, 40, 98), (1, 16, 1)]}
CASES = [(name, shape) for name in available_models()
         for shape in OWN_SHAPES.get(name, SHAPES)]


def test_the_registry_lists_the_models():
    names = available_models()
    assert names == sorted(names)
    assert {"dscnn", "clip_cnn", "spectrogram_cnn"} <= set(names)


@pytest.mark.parametrize("name,shape", CASES,
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_every_model_returns_one_logit_per_class(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 5).eval()
    features = torch.randn(3, *shape)
    with torch.no_grad():
        logits = model(features)
    assert logits.shape == (3, 5)
    assert torch.isfinite(logits).all()
    # examples are judged independently: one example alone gives the same logits
    with torch.no_grad():
        single = model(features[1:2])
    torch.testing.assert_close(single[0], logits[1], rtol=1e-4, atol=1e-5)


def test_dscnn_defaults_are_ds_cnn_s_size():
    model = build_model("dscnn", (1, 10, 49), 12)
    assert 20_000 <= count_parameters(model) <= 30_000
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 10, 49)).shape == (2, 12)


def test_dscnn_options_change_the_model():
    small = build_model("dscnn", (1, 10, 49), 12, channels=16, blocks=2)
    default = build_model("dscnn", (1, 10, 49), 12)
    assert count_parameters(small) < count_parameters(default) / 4
    residual = build_model("dscnn", (1, 10, 49), 12, residual=True, kernel=[3, 3], stride=[1, 1])
    with torch.no_grad():
        assert residual.eval()(torch.randn(2, 1, 10, 49)).shape == (2, 12)


def test_dscnn_flattened_head_weighs_columns_by_position():
    torch.manual_seed(0)
    mean = build_model("dscnn", (1, 40, 49), 12, time_padding="valid")
    flat = build_model("dscnn", (1, 40, 49), 12, time_padding="valid", time_pooling="flatten")
    assert flat.columns == mean.columns == 12
    assert flat.classifier.in_features == 64 * 12
    features = torch.randn(2, 1, 40, 49)
    late_change = features.clone()
    late_change[..., 40:] += 3.0             # beyond the first column's 26 frames
    with torch.no_grad():
        # A head that reads only the first column ignores the window's end...
        flat.classifier.weight.zero_()
        flat.classifier.weight.view(12, 64, 12)[:, :, 0] = 1.0
        flat.eval(), mean.eval()
        assert flat(features).shape == (2, 12)
        torch.testing.assert_close(flat(late_change), flat(features))
        # ...which an averaging head cannot (weights of one: the change is not lost in
        # the small random weights of an untrained head).
        mean.classifier.weight.fill_(1.0)
        assert not torch.allclose(mean(late_change), mean(features), atol=1e-4)
    with pytest.raises(ConfigError, match="time_pooling"):
        build_model("dscnn", (1, 40, 49), 12, time_pooling="max")
    with pytest.raises(ConfigError, match="too few"):
        build_model("dscnn", (1, 40, 12), 12, time_padding="valid")


@pytest.mark.parametrize("pooling", ["max", "attention", "mean"])
def test_clip_cnn_takes_any_number_of_frames_with_the_same_weights(pooling):
    torch.manual_seed(0)
    model = build_model("clip_cnn", (1, 32, 100), 4, pooling=pooling).eval()
    outputs = []
    with torch.no_grad():
        for frames in (32, 100, 333):
            logits = model(torch.randn(2, 1, 32, frames))
            assert logits.shape == (2, 4)
            assert torch.isfinite(logits).all()
            outputs.append(logits)
    assert not torch.allclose(outputs[0], outputs[1])


def test_clip_cnn_pooling_modes_differ_and_a_bad_one_is_refused():
    features = torch.randn(2, 1, 32, 64)
    results = {}
    for pooling in ("max", "attention", "mean"):
        torch.manual_seed(0)
        model = build_model("clip_cnn", (1, 32, 64), 3, pooling=pooling).eval()
        with torch.no_grad():
            results[pooling] = model(features)
    assert not torch.allclose(results["max"], results["mean"])
    with pytest.raises(ConfigError, match="pooling"):
        build_model("clip_cnn", (1, 32, 64), 3, pooling="sum")


def test_an_unknown_option_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="chanels") as caught:
        build_model("dscnn", (1, 10, 49), 12, chanels=32)
    assert "channels" in str(caught.value)      # the valid options are listed


@pytest.mark.parametrize("options", [{"channels": 0}, {"channels": -3}, {"blocks": "two"}])
def test_an_option_value_no_network_can_take_is_a_config_error_naming_it(options, recwarn):
    (key, value), = options.items()
    with pytest.raises(ConfigError, match=f"{key} = {value!r} cannot be built"):
        build_model("dscnn", (1, 10, 49), 12, **options)
    assert not [w for w in recwarn if "zero-element" in str(w.message)]   # the error alone


def test_an_unknown_model_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match="resnet") as caught:
        build_model("resnet", (1, 10, 49), 12)
    for name in available_models():
        assert name in str(caught.value)


#: a cheap input shape per model for the overfitting check
OVERFIT_SHAPES = {"dscnn": (1, 10, 49), "clip_cnn": (1, 16, 24), "spectrogram_cnn": (1, 16, 16),
                  "tcn": (1, 40, 98)}


@pytest.mark.parametrize("name", available_models())
def test_a_few_steps_overfit_a_tiny_batch(name):
    torch.manual_seed(0)
    shape = OVERFIT_SHAPES.get(name, (1, 16, 16))
    model = build_model(name, shape, 3, dropout=0.0)
    features = torch.randn(6, *shape)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    with torch.no_grad():
        first = float(loss_fn(model(features), targets))
    for _ in range(15):
        optimizer.zero_grad()
        loss = loss_fn(model(features), targets)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        last = float(loss_fn(model(features), targets))
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize("name", ["clip_cnn", "spectrogram_cnn"])
def test_too_small_input_for_the_poolings_is_a_config_error(name):
    with pytest.raises(ConfigError, match="at least 16 bands"):
        build_model(name, (1, 10, 49), 3)


def test_the_linear_probe_judges_with_the_training_windows_mean_and_spread():
    torch.manual_seed(0)
    probe = build_model("embedding_linear", (1, 8, 2), 3).train()
    centre, spread = torch.linspace(-5, 5, 16), torch.linspace(0.5, 4, 16)
    batches = [centre + spread * torch.randn(32, 16) for _ in range(40)]
    with torch.no_grad():
        for batch in batches:
            probe(batch.view(32, 1, 8, 2))
        probe(torch.full((1, 1, 8, 2), 1e6))     # a last batch of one: no statistics of its own
        seen = torch.cat(batches)
        standardised = probe.eval().standardise(seen)
    torch.testing.assert_close(standardised.mean(0), torch.zeros(16), atol=0.02, rtol=0)
    torch.testing.assert_close(standardised.std(0), torch.ones(16), atol=0.02, rtol=0)


def test_the_linear_probe_takes_one_channel_and_a_dropout_below_one():
    with pytest.raises(ConfigError, match="one feature channel"):
        build_model("embedding_linear", (2, 96, 16), 3)
    with pytest.raises(ConfigError, match="dropout = 1.0"):
        build_model("embedding_linear", (1, 96, 16), 3, dropout=1.0)


def test_column_cnn_size_and_options():
    model = build_model("column_cnn", (1, 384, 67), 12)
    width = 96
    projection = 384 * width + width + 2 * width            # pointwise, bias, batch norm
    block = width * 3 + width + width * width + width + 2 * width
    assert count_parameters(model) == projection + 2 * block + 2 * width * 12 + 12
    assert count_parameters(model) + depth(2).parameters < 100_000   # with 2 frozen blocks
    for options in ({"kernel": 4}, {"width": 0}, {"blocks": -1}):
        with pytest.raises(ConfigError, match="column_cnn"):
            build_model("column_cnn", (1, 384, 67), 12, **options)
    with pytest.raises(ConfigError, match="one feature channel"):
        build_model("column_cnn", (2, 384, 67), 12)


def test_column_cnn_hears_a_word_wherever_it_falls_in_the_window():
    torch.manual_seed(0)
    model = build_model("column_cnn", (1, 24, 60), 4).eval()
    word = torch.randn(1, 1, 24, 10)
    placed = []
    for start in (10, 25, 40):
        features = torch.zeros(1, 1, 24, 60)
        features[..., start:start + 10] = word
        with torch.no_grad():
            placed.append(model(features))
    torch.testing.assert_close(placed[0], placed[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(placed[0], placed[2], rtol=1e-5, atol=1e-5)
    with torch.no_grad():                                  # and hears what it is
        other = model(torch.zeros(1, 1, 24, 60))
    assert not torch.allclose(placed[0], other, atol=1e-3)


def test_the_ensemble_gives_the_log_of_its_heads_mean_probability():
    torch.manual_seed(0)
    ensemble = build_model("embedding_ensemble", (1, 96, 8), 2, members=3).eval()
    features = torch.randn(5, 1, 96, 8)
    with torch.no_grad():
        mean = torch.stack([head(features).softmax(-1) for head in ensemble.members]).mean(0)
        joined = ensemble(features)
    assert torch.allclose(joined.softmax(-1), mean, atol=1e-6)
    assert torch.allclose(joined.exp(), mean, atol=1e-6)     # already normalised
    assert not torch.allclose(ensemble.members[0](features).softmax(-1), mean, atol=1e-3)
    single = build_model("embedding_ensemble", (1, 96, 8), 2, members=1).eval()
    with torch.no_grad():
        assert torch.allclose(single(features), single.members[0](features).log_softmax(-1))
    with pytest.raises(ConfigError, match="members >= 1"):
        build_model("embedding_ensemble", (1, 96, 8), 2, members=0)
