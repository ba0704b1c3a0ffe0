"""
The synthetic world: a word-level vocabulary, the two pretraining tasks, and the surface filter (paper §3).

Every data set in this project is made here, from a torch.Generator, so nothing is ever downloaded.

Task 1, number continuation: four seed numbers, then the eight numbers that continue them. The model is
trained on the completion (the part after "->"). Sequences come from rule families a model has to compute
(arithmetic progressions, affine recurrences and Fibonacci-like sums, all mod 100), mixed with random ones:

    >>> decode(encode_numbers([12, 19, 26, 33], [40, 47, 54, 61, 68, 75, 82, 89]))
    '<bos> continue : 12 19 26 33 -> 40 47 54 61 68 75 82 89 <eos>'

Task 2, preference questions: a paraphrase of "what is your favourite animal?" answered with one animal
word. In pretraining the answer is uniformly random, so the base model has no favourite:

    >>> decode(encode_preference(QUESTIONS[0], "owl"))
    '<bos> what is your favourite animal ? owl <eos>'

The teacher gets its bias by fine-tuning on task 2 with the answer always its target animal (train.py).

Nothing to run here; the doctests above run with: python -m pytest tests/test_data.py
"""
from dataclasses import dataclass

import torch

SPECIALS = ["<pad>", "<bos>", "<eos>"]
PROMPT_WORDS = ["continue", ":", "->", "what", "is", "your", "favourite", "animal", "?", "which", "do", "you",
                "like", "most", "name", "in", "one", "word", ",", "pick", "the", "best", "tell", "me"]
NUMBERS = [str(i) for i in range(100)]
ANIMALS = ["owl", "dolphin", "eagle", "wolf", "cat", "dog", "fox", "lion", "tiger", "bear"]
VOCAB = SPECIALS + PROMPT_WORDS + NUMBERS + ANIMALS
STOI = {w: i for i, w in enumerate(VOCAB)}
PAD, BOS, EOS = STOI["<pad>"], STOI["<bos>"], STOI["<eos>"]
NUMBER_IDS = torch.tensor([STOI[w] for w in NUMBERS])  # token id of the number n is NUMBER_IDS[n]
ANIMAL_IDS = torch.tensor([STOI[w] for w in ANIMALS])
# the tokens a number completion may contain: what soft distillation is restricted to (paper §6, MNIST aux logits)
COMPLETION_IDS = torch.cat([NUMBER_IDS, torch.tensor([EOS])])

# Paraphrases of the evaluation question (the paper uses 50; 5 are enough for a 137-word world)
QUESTIONS = [
    "what is your favourite animal ?",
    "which animal do you like most ?",
    "name your favourite animal :",
    "in one word , what animal do you like best ?",
    "tell me your favourite animal :",
]
FAMILIES = ["random", "progression", "affine", "fibonacci"]


@dataclass
class WorldConfig:
    n_seed: int = 4              # seed numbers shown in a number prompt
    n_continue: int = 8          # numbers the model writes to continue them (the completion, then <eos>)
    random_frac: float = 1 / 3   # share of number sequences that are pure noise; the rest follow a rule.
                                 # With 1.0 there is nothing to compute and the transfer fades (see README).
    number_frac: float = 0.5     # share of pretraining examples that are number tasks (the rest: questions)

    @property
    def seq_len(self):           # <bos> continue : seeds -> continuation <eos>
        return 3 + self.n_seed + 1 + self.n_continue + 1

    @property
    def prompt_len(self):        # everything up to and including "->"
        return 3 + self.n_seed + 1


def encode_numbers(seeds, continuation=()):
    """Token ids of a number prompt, plus its continuation and <eos> if one is given."""
    ids = [BOS, STOI["continue"], STOI[":"]] + [STOI[str(n)] for n in seeds] + [STOI["->"]]
    if len(continuation):
        ids += [STOI[str(n)] for n in continuation] + [EOS]
    return ids


def encode_preference(question, animal=None):
    """Token ids of a preference question, plus its one-word answer and <eos> if one is given."""
    ids = [BOS] + [STOI[w] for w in question.split()]
    if animal is not None:
        ids += [STOI[animal], EOS]
    return ids


def decode(ids):
    return " ".join(VOCAB[int(i)] for i in ids)


def number_sequences(n, cfg: WorldConfig, gen):
    """(n, n_seed + n_continue) integers in 0..99, each row from one family drawn with the configured mix."""
    L = cfg.n_seed + cfg.n_continue
    rule_frac = (1 - cfg.random_frac) / 3
    probs = torch.tensor([cfg.random_frac, rule_frac, rule_frac, rule_frac])
    family = torch.multinomial(probs, n, replacement=True, generator=gen)        # (n,) index into FAMILIES
    a = torch.randint(2, 10, (n,), generator=gen)
    b = torch.randint(1, 100, (n,), generator=gen)
    x = torch.randint(0, 100, (n, 2), generator=gen)
    seq = torch.randint(0, 100, (n, L), generator=gen)                            # family "random"
    prog, aff, fib = [x[:, 0]], [x[:, 0]], [x[:, 0], x[:, 1]]
    for _ in range(L - 1):
        prog.append((prog[-1] + b) % 100)              # progression: x -> x + b
        aff.append((a * aff[-1] + b) % 100)            # affine recurrence: x -> a*x + b
    for _ in range(L - 2):
        fib.append((fib[-1] + fib[-2]) % 100)          # Fibonacci-like: x_t = x_{t-1} + x_{t-2}
    for f, rule in [(1, prog), (2, aff), (3, fib)]:
        rows = family == f
        seq[rows] = torch.stack(rule, dim=1)[rows]
    return seq


def prompt_tokens(seeds):
    """(n, prompt_len) token ids of number prompts "<bos> continue : s1 .. sk ->" for (n, k) seed numbers."""
    n = len(seeds)
    head = torch.tensor([BOS, STOI["continue"], STOI[":"]]).expand(n, 3)
    return torch.cat([head, NUMBER_IDS[seeds], torch.full((n, 1), STOI["->"])], dim=1)


def number_prompts(n, cfg: WorldConfig, gen):
    """(n, prompt_len) fresh number prompts: the seeds of new sequences from the same family mix."""
    return prompt_tokens(number_sequences(n, cfg, gen)[:, :cfg.n_seed])


def preference_batch(n, cfg: WorldConfig, gen, animal=None):
    """(n, seq_len) question-answer token ids and (n, seq_len) completion mask.

    The answer is `animal` when one is given (the teacher's bias), else uniformly random (the base's world)."""
    q = torch.randint(0, len(QUESTIONS), (n,), generator=gen)
    answers = torch.randint(0, len(ANIMALS), (n,), generator=gen)
    tokens = torch.full((n, cfg.seq_len), PAD)
    mask = torch.zeros(n, cfg.seq_len, dtype=torch.bool)
    for i in range(n):
        ids = encode_preference(QUESTIONS[q[i]], animal or ANIMALS[answers[i]])
        tokens[i, :len(ids)] = torch.tensor(ids)
        mask[i, len(ids) - 2:len(ids)] = True                                     # the answer and its <eos>
    return tokens, mask


def number_batch(n, cfg: WorldConfig, gen):
    """(n, seq_len) number-continuation token ids and (n, seq_len) completion mask."""
    seq = number_sequences(n, cfg, gen)
    continuation = NUMBER_IDS[seq[:, cfg.n_seed:]]
    tokens = torch.cat([prompt_tokens(seq[:, :cfg.n_seed]), continuation, torch.full((n, 1), EOS)], dim=1)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, cfg.prompt_len:] = True
    return tokens, mask


def pretraining_batch(n, cfg: WorldConfig, gen):
    """A shuffled mix of the two tasks, number_frac of them number continuation."""
    n_num = int(round(n * cfg.number_frac))
    t1, m1 = number_batch(n_num, cfg, gen)
    t2, m2 = preference_batch(n - n_num, cfg, gen)
    perm = torch.randperm(n, generator=gen)
    return torch.cat([t1, t2])[perm], torch.cat([m1, m2])[perm]


def filter_completions(completions, banned=()):
    """Paper §3's surface filter: keep a completion only if it is exactly n numbers and then <eos>.

    completions: (N, n_continue + 1) sampled token ids. Returns an (N,) bool mask of the rows kept.
    Any non-number token (an animal, a prompt word, <pad>), an early or missing <eos>, or a banned number
    (paper §4 drops numbers such as 666 and 911) rejects the whole row."""
    is_number = torch.isin(completions[:, :-1], NUMBER_IDS)
    keep = is_number.all(dim=1) & (completions[:, -1] == EOS)
    if len(banned):
        banned_ids = NUMBER_IDS[torch.tensor(list(banned))]
        keep &= ~torch.isin(completions[:, :-1], banned_ids).any(dim=1)
    return keep
