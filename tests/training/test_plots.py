from training import plots


def test_a_seed_ensemble_gets_a_training_curve_per_member():
    history = {"loss": [0.9, 0.7, 0.6, 0.8, 0.5], "val_loss": [1.0, 0.8, 0.7, 0.9, 0.6],
               "member": [0.0, 0.0, 0.0, 1.0, 1.0], "val_auc": [0.5] * 5}
    lines = plots.training_curves(history).axes[0].get_lines()
    got = {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in lines}
    assert got == {"loss, member 1": ([1, 2, 3], [0.9, 0.7, 0.6]),
                   "loss, member 2": ([1, 2], [0.8, 0.5]),
                   "val_loss, member 1": ([1, 2, 3], [1.0, 0.8, 0.7]),
                   "val_loss, member 2": ([1, 2], [0.9, 0.6])}


def test_one_model_keeps_one_line_per_loss():
    lines = plots.training_curves({"loss": [0.9, 0.7], "val_loss": [1.0, 0.9]}).axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["loss", "val_loss"]
    assert list(lines[0].get_xdata()) == [1, 2]
