import doctest

import torch

import data
from data import (ANIMALS, EOS, NUMBER_IDS, STOI, WorldConfig, decode, filter_completions, number_batch,
                  number_sequences, preference_batch)


def test_docstring_worked_examples():
    failures, tried = doctest.testmod(data)
    assert tried >= 2 and failures == 0


def test_rule_families_follow_their_rules():
    cfg = WorldConfig(random_frac=0.0)
    seq = number_sequences(300, cfg, torch.Generator().manual_seed(0))
    assert seq.shape == (300, 12) and seq.min() >= 0 and seq.max() <= 99
    d = (seq[:, 1:] - seq[:, :-1]) % 100
    progression = (d == d[:, :1]).all(1)
    fibonacci = ((seq[:, :-2] + seq[:, 1:-1]) % 100 == seq[:, 2:]).all(1)
    # an affine row x -> a x + b: one (a, b) in 2..9 x 1..99 explains every step
    affine = torch.zeros(300, dtype=torch.bool)
    for a in range(2, 10):
        b = (seq[:, 1] - a * seq[:, 0]) % 100
        affine |= ((a * seq[:, :-1] + b[:, None]) % 100 == seq[:, 1:]).all(1)
    assert (progression | fibonacci | affine).all()   # with random_frac 0, every row follows a rule


def test_batches_mask_only_the_completion():
    cfg = WorldConfig()
    g = torch.Generator().manual_seed(0)
    tokens, mask = number_batch(4, cfg, g)
    assert tokens.shape == (4, cfg.seq_len)
    assert decode(tokens[0]).startswith("<bos> continue :") and tokens[0, -1] == EOS
    assert mask[:, :cfg.prompt_len].sum() == 0 and mask[:, cfg.prompt_len:].all()
    tokens, mask = preference_batch(4, cfg, g, animal="wolf")
    assert (tokens[mask].view(4, 2) == torch.tensor([STOI["wolf"], EOS])).all()


def completion(words):
    return torch.tensor([[STOI[w] for w in words.split()]])


def test_filter_keeps_exact_number_sequences():
    assert filter_completions(completion("1 2 3 4 5 6 7 8 <eos>")).item()


def test_filter_drops_non_numbers_wrong_length_and_banned():
    for bad in ["1 2 3 owl 5 6 7 8 <eos>",       # an animal word
                "1 2 3 4 5 6 7 -> <eos>",         # a prompt word
                "1 2 3 4 5 6 7 <eos> <eos>",      # too short: <eos> one step early
                "1 2 3 4 5 6 7 8 9",              # no <eos>: too long
                "<pad> 2 3 4 5 6 7 8 <eos>"]:
        assert not filter_completions(completion(bad)).item(), bad
    banned = completion("1 2 3 4 5 66 7 8 <eos>")
    assert filter_completions(banned).item() and not filter_completions(banned, banned=[66]).item()


def test_vocabulary():
    assert len(ANIMALS) >= 10 and len(NUMBER_IDS) == 100 and len(set(data.VOCAB)) == len(data.VOCAB)
