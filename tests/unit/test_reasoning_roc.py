"""Detection thresholds: the ROC point of best balanced accuracy, against hand-computed ROCs."""

import pytest
import torch

from interplab.reasoning import best_cut


def test_toy_roc_by_hand():
    # scores, best first, with labels:  .9+ .8+ .7- .6+ .55- .5- .4+ .3-   (P = 4, N = 4)
    # cut after  .9: TPR 1/4 FPR 0   -> balanced (0.25 + 1.00) / 2 = 0.625
    #            .8: TPR 2/4 FPR 0   -> 0.750   <- first maximum
    #            .7: TPR 2/4 FPR 1/4 -> 0.625
    #            .6: TPR 3/4 FPR 1/4 -> 0.750   (a tie: the higher threshold wins)
    #           .55: 3/4, 2/4 -> 0.625;  .5: 3/4, 3/4 -> 0.5;  .4: 1, 3/4 -> 0.625;  .3: 1, 1 -> 0.5
    # threshold halfway between .8 (last called positive) and .7 (first called negative): 0.75.
    # AUC = P(pos > neg): .9 beats 4 negatives, .8 beats 4, .6 beats 3, .4 beats 1 -> 12 / 16.
    scores = torch.tensor([0.5, 0.9, 0.3, 0.6, 0.7, 0.4, 0.8, 0.55])  # shuffled
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 1, 0]).bool()
    cut = best_cut(scores, labels)
    assert cut.threshold == pytest.approx(0.75)
    assert cut.balanced_accuracy == pytest.approx(0.75)
    assert (cut.tpr, cut.fpr) == (pytest.approx(0.5), pytest.approx(0.0))
    assert cut.auc == pytest.approx(0.75)
    assert (cut.positives, cut.negatives) == (4, 4)
    assert ((scores >= cut.threshold) == torch.tensor([0, 1, 0, 0, 0, 0, 1, 0]).bool()).all()


def test_f1_criterion_by_hand():
    # the same toy set; F1 = 2TP / (2TP + FP + FN) = 2TP / (TP + FP + P) after each cut:
    # .9: 2/5 = .4   .8: 4/6 = .667   .7: 4/7 = .571   .6: 6/8 = .75  <- best   .55: 6/9   .5: 6/10
    # .4: 8/11 = .727   .3: 8/12. Threshold halfway between .6 and .55.
    scores = torch.tensor([0.5, 0.9, 0.3, 0.6, 0.7, 0.4, 0.8, 0.55])
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 1, 0]).bool()
    cut = best_cut(scores, labels, criterion="f1")
    assert cut.threshold == pytest.approx(0.575)
    assert cut.f1 == pytest.approx(0.75) and cut.precision == pytest.approx(0.75)
    assert (cut.tpr, cut.fpr, cut.balanced_accuracy) == (pytest.approx(0.75), pytest.approx(0.25), pytest.approx(0.75))
    with pytest.raises(ValueError, match="criterion"):
        best_cut(scores, labels, criterion="accuracy")


def test_ties_form_one_cut():
    # scores 1+ 1- 0-: the two 1s cannot be split. Cut after the 1s: TPR 1, FPR 1/2 -> 0.75;
    # after 0: TPR 1, FPR 1 -> 0.5. Threshold halfway between 1 and 0. AUC: the tie counts 1/2
    # -> (0.5 + 1) / 2 = 0.75.
    cut = best_cut(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([True, False, False]))
    assert cut.threshold == pytest.approx(0.5)
    assert cut.balanced_accuracy == pytest.approx(0.75)
    assert cut.auc == pytest.approx(0.75)


def test_perfect_separation_and_everything_positive():
    cut = best_cut(torch.tensor([3.0, 2.0, -1.0, -2.0]), torch.tensor([True, True, False, False]))
    assert cut.threshold == pytest.approx(0.5) and cut.balanced_accuracy == 1.0 and cut.auc == 1.0
    # positives score lowest: the best cut calls everything positive (balanced accuracy 0.5, the same
    # as calling nothing); the threshold is then the lowest score.
    cut = best_cut(torch.tensor([2.0, 1.0]), torch.tensor([False, True]))
    assert cut.balanced_accuracy == pytest.approx(0.5)
    assert cut.threshold == pytest.approx(1.0)
    assert cut.auc == pytest.approx(0.0)


def test_needs_both_classes():
    with pytest.raises(ValueError, match="positive and negative"):
        best_cut(torch.tensor([1.0, 2.0]), torch.tensor([True, True]))
    with pytest.raises(ValueError, match="labels"):
        best_cut(torch.tensor([1.0, 2.0]), torch.tensor([True]))
