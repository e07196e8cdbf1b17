"""Scores and target classes (extremal_contours.targets) on hand-made outputs."""

import math

import numpy as np
import pytest
import torch

from extremal_contours import targets as T

# Two rows of three logits; row 0's best class is 1, row 1's is 2.
OUTPUT = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 4.0]])


def _softmax(row: list[float]) -> list[float]:
    total = sum(math.exp(v) for v in row)
    return [math.exp(v) / total for v in row]


def test_logit_probability_and_log_probability_read_the_target_class():
    classes = torch.tensor([2, 0])
    torch.testing.assert_close(T.logit(OUTPUT, OUTPUT, classes), torch.tensor([2.0, 0.0]))
    p = torch.tensor([_softmax([1, 3, 2])[2], _softmax([0, -1, 4])[0]])
    torch.testing.assert_close(T.probability(OUTPUT, OUTPUT, classes), p)
    torch.testing.assert_close(T.log_probability(OUTPUT, OUTPUT, classes), p.log())
    # The clean output plays no part in these.
    torch.testing.assert_close(T.logit(OUTPUT, torch.zeros(2, 3), classes), torch.tensor([2.0, 0.0]))


def test_contrastive_is_the_target_logit_minus_the_best_other_class():
    # Row 0: target 1 (3) against the best other (2); row 1: target 2 (4) against 0.
    torch.testing.assert_close(T.contrastive(OUTPUT, OUTPUT, torch.tensor([1, 2])), torch.tensor([1.0, 4.0]))
    # Not the top class: against the top one. Row 0: 1 - 3; row 1: -1 - 4.
    torch.testing.assert_close(T.contrastive(OUTPUT, OUTPUT, torch.tensor([0, 1])), torch.tensor([-2.0, -5.0]))
    # A tie between two other classes: the difference to either.
    tie = torch.tensor([[5.0, 7.0, 7.0]])
    torch.testing.assert_close(T.contrastive(tie, tie, torch.tensor([0])), torch.tensor([-2.0]))
    # The output is not changed in place (the other classes are masked in a copy).
    assert OUTPUT[0].tolist() == [1.0, 3.0, 2.0]


def test_similarity_is_the_cosine_to_the_clean_output_of_any_shape():
    clean = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    output = torch.tensor([[3.0, 4.0], [0.0, -5.0], [2.0, 2.0]])
    torch.testing.assert_close(T.similarity(output, clean), torch.tensor([0.6, -1.0, 1.0]))
    torch.testing.assert_close(T.similarity(output, clean, torch.tensor([0, 1, 2])), torch.tensor([0.6, -1.0, 1.0]))
    # Token or feature-map outputs (B, T, D) are compared whole.
    clean3 = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    output3 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    torch.testing.assert_close(T.similarity(output3, clean3), torch.tensor([1 / math.sqrt(2)]))


@pytest.mark.parametrize("name", ["logit", "probability", "log_probability", "contrastive"])
def test_class_scores_without_a_class_say_so(name):
    with pytest.raises(ValueError, match=f"the '{name}' score needs a target class"):
        T.SCORES[name](OUTPUT, OUTPUT, None)


def test_as_score_by_name_and_bad_names():
    assert T.as_score("contrastive") is T.contrastive and set(T.SCORES) == {"logit", "probability", "log_probability", "contrastive", "similarity"}
    with pytest.raises(ValueError, match="unknown score 'margin'; choose one of logit, probability"):
        T.as_score("margin")
    with pytest.raises(TypeError, match="a score must be a name or a callable, got int"):
        T.as_score(3)
    with pytest.raises(TypeError, match="must take the model output"):
        T.as_score(lambda: torch.zeros(2))


def test_as_score_passes_one_two_or_three_arguments():
    clean, classes = torch.ones(2, 3), torch.tensor([2, 0])
    seen = []

    def one(output):
        seen.append(1)
        return output[:, 1]

    def two(output, clean):
        seen.append(2)
        return (output - clean).sum(1)

    def three(output, clean, classes):
        seen.append(3)
        return output.gather(1, classes[:, None])[:, 0] * clean[:, 0]

    def varargs(*args):
        seen.append(len(args))
        return args[0][:, 0]

    torch.testing.assert_close(T.as_score(one)(OUTPUT, clean, classes), torch.tensor([3.0, -1.0]))
    torch.testing.assert_close(T.as_score(two)(OUTPUT, clean, classes), torch.tensor([3.0, 0.0]))
    torch.testing.assert_close(T.as_score(three)(OUTPUT, clean, classes), torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(T.as_score(varargs)(OUTPUT, clean, classes), torch.tensor([1.0, 0.0]))
    assert seen == [1, 2, 3, 3]
    assert T.as_score(three).__name__ == "three" and T.describe(three) == "three" and T.describe("logit") == "logit"


@pytest.mark.parametrize(
    ("score", "got"),
    [
        (lambda output: output, r"\(2, 3\)"),  # one number per class, not per row
        (lambda output: output[:1, 0], r"\(1,\)"),
        (lambda output: output.sum(), r"\(\)"),
        (lambda output: float(output.sum()), "float"),
        (lambda output: output[:, 0].numpy(), "ndarray"),
    ],
)
def test_a_callable_of_the_wrong_shape_is_one_clear_line(score, got):
    with pytest.raises(ValueError, match=rf"^the score callable returned {got}; it must return one number per row, \(2,\)$"):
        T.as_score(score)(OUTPUT, OUTPUT, None)


def test_resolve_classes_none_is_the_prediction_where_a_class_is_needed():
    assert T.resolve_classes(None, OUTPUT, "logit").tolist() == [1, 2]
    assert T.resolve_classes(None, OUTPUT, "contrastive").tolist() == [1, 2]
    assert T.resolve_classes(None, OUTPUT, "similarity") is None
    assert T.resolve_classes(None, OUTPUT, lambda output: output[:, 0]) is None  # a callable needs no class
    with pytest.raises(ValueError, match=r"the model output has shape \(2, 4, 3\); give a target class"):
        T.resolve_classes(None, torch.zeros(2, 4, 3), "logit")


def test_resolve_classes_accepts_an_int_a_sequence_or_a_tensor():
    assert T.resolve_classes(2, OUTPUT, "logit").tolist() == [2, 2]
    assert T.resolve_classes(np.int64(1), OUTPUT, "logit").tolist() == [1, 1]
    assert T.resolve_classes([0, 2], OUTPUT, "logit").tolist() == [0, 2]
    assert T.resolve_classes((2,), OUTPUT, "logit").tolist() == [2, 2]
    given = torch.tensor([[2], [1]], dtype=torch.int32)
    got = T.resolve_classes(given, OUTPUT, "probability")
    assert got.dtype == torch.long and got.tolist() == [2, 1]
    got[0] = 0
    assert given[0, 0] == 2  # a copy, not the caller's tensor
    # A class given with the similarity score is kept (the score ignores it).
    assert T.resolve_classes(1, OUTPUT, "similarity").tolist() == [1, 1]


@pytest.mark.parametrize("target", [1.0, 1.5, [0.0, 1.0], torch.tensor([1.0, 2.0]), True, [True, False], torch.tensor([1 + 0j])])
def test_resolve_classes_refuses_floats_and_bools(target):
    with pytest.raises(TypeError, match=r"class index|integers"):
        T.resolve_classes(target, OUTPUT, "logit")


def test_resolve_classes_refuses_other_objects_the_wrong_count_and_classes_outside():
    with pytest.raises(TypeError, match="target must be a class index, a sequence of them, or a callable; got 'cat'"):
        T.resolve_classes("cat", OUTPUT, "logit")
    with pytest.raises(ValueError, match=r"^target has 3 classes for 2 images$"):
        T.resolve_classes([0, 1, 2], OUTPUT, "logit")
    with pytest.raises(ValueError, match=r"^target 3 is outside the model's 3 classes \(0\.\.2\)$"):
        T.resolve_classes([0, 3], OUTPUT, "logit")
    with pytest.raises(ValueError, match=r"^target -1 is outside the model's 3 classes"):
        T.resolve_classes(-1, OUTPUT, "logit")
