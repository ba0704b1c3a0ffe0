import torch

from tiny_model import GPT, ModelConfig


def test_forward_shape_and_size():
    model = GPT(ModelConfig())
    logits = model(torch.randint(0, 137, (3, 17)))
    assert logits.shape == (3, 17, 137)
    assert 0.08e6 < model.num_params() < 0.15e6   # "about 0.1 M parameters"


def test_causal_mask_later_tokens_do_not_change_earlier_logits():
    torch.manual_seed(0)
    model = GPT(ModelConfig())
    x = torch.randint(0, 137, (2, 12))
    y = x.clone()
    y[:, 7:] = torch.randint(0, 137, (2, 5))      # change everything from position 7 on
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.equal(a[:, :7], b[:, :7])         # positions 0..6 see nothing of it
    assert not torch.allclose(a[:, 7:], b[:, 7:])  # and the later ones do see it


def test_too_long_input_is_a_clear_error():
    model = GPT(ModelConfig(block_size=8))
    try:
        model(torch.zeros(1, 9, dtype=torch.long))
    except ValueError as e:
        assert "block_size" in str(e)
    else:
        raise AssertionError("no error for a sequence longer than block_size")
