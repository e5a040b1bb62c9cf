"""The training curves: axes per job, accuracy on 0 to 1, a smoothed and log-scale loss."""

from __future__ import annotations

from desktop.pages.training.curves import CurveData, Curves


def test_curves_reset_their_axes_per_job_and_keep_accuracy_on_0_to_1(qtbot):
    curves = Curves()
    qtbot.addWidget(curves)
    curves.resize(800, 300)
    curves.show()
    losses = [(s, 10.0 - s / 20) for s in range(1, 101)]
    accuracy = [(20, 0.5), (40, 0.7), (60, 0.9)]
    curves.set_data(CurveData("job:1", {"a": losses}, {"a": accuracy}, "accuracy", 100))
    curves.flush()
    (x0, x1), (y0, y1) = curves.eval_plot.getViewBox().viewRange()
    assert (y0, y1) == (0.0, 1.0)
    assert x0 <= 0 and 100 <= x1 < 110
    curves.loss_plot.getViewBox().setXRange(40, 45)  # the user zoomed in on the first job
    curves.set_data(CurveData("job:2", {"b": [(1, 0.3), (2, 0.2)]}, {"b": [(2, 1.0)]},
                              "accuracy", 10))
    curves.flush()
    for plot in (curves.loss_plot, curves.eval_plot):  # both from step 0 to the new total
        (x0, x1), _ = plot.getViewBox().viewRange()
        assert x0 <= 0 and 10 <= x1 < 12
    (_, _), (y0, y1) = curves.eval_plot.getViewBox().viewRange()
    assert (y0, y1) == (0.0, 1.0)  # never down to -0.1, even with one point at 1.0
    assert list(curves.loss_curves) == ["b"]
    curves.set_data(CurveData("job:3", {"c": [(1, 5.0)]}, {"c": [(1, 4.0), (2, 3.0)]},
                              "eval_loss", 2))
    curves.flush()

    def fitted() -> bool:  # a loss is fitted to its values (pyqtgraph fits at the next paint)
        y0, y1 = curves.eval_plot.getViewBox().viewRange()[1]
        return y0 > 2.5 and y1 < 4.5

    qtbot.waitUntil(fitted, timeout=2000)


def test_the_loss_is_smoothed_over_its_faint_raw_trace_and_can_go_log_scale(qtbot):
    import numpy as np

    from desktop.pages.training.curves import smoothed

    assert smoothed(np.array([2.0]))[0] == 2.0  # no pull towards zero at the start
    noisy = np.array([1.0, 3.0] * 50)
    assert np.ptp(smoothed(noisy)[50:]) < 0.5 < np.ptp(noisy)
    curves = Curves()
    qtbot.addWidget(curves)
    curves.set_data(CurveData("job:1", {"a": [(s, float(s % 2) + 1) for s in range(1, 41)]},
                              {}, "accuracy", 40))
    curves.flush()
    raw = curves.raw_curves["a"].getData()[1]
    shown = curves.loss_curves["a"].getData()[1]
    assert list(raw[:4]) == [2.0, 1.0, 2.0, 1.0] and np.ptp(shown[-10:]) < np.ptp(raw[-10:])
    assert curves.raw_curves["a"].opts["pen"].color().alpha() < 255
    curves.log_scale.setChecked(True)
    assert curves.loss_plot.getPlotItem().ctrl.logYCheck.isChecked()


def test_the_learning_rate_is_drawn_on_its_own_right_hand_axis_and_can_be_hidden(qtbot):
    curves = Curves()
    qtbot.addWidget(curves)
    curves.resize(800, 300)
    curves.show()
    warmup = [(s, 0.02 * min(1.0, s / 10)) for s in range(1, 41)]
    curves.set_data(CurveData("job:1", {"a": [(s, 1.0 / s) for s in range(1, 41)]}, {},
                              "accuracy", 40, warmup))
    curves.flush()
    x, y = curves.lr_curve.getData()
    assert list(x) == list(range(1, 41)) and y[0] == 0.002 and y[-1] == 0.02
    assert curves.lr_curve.isVisible() and curves.loss_plot.getAxis("right").isVisible()
    curves.lr_view.autoRange()
    (_, _), (y0, y1) = curves.lr_view.viewRange()
    assert y0 <= 0.002 and y1 >= 0.02  # its own scale, not the loss axis's
    curves.show_lr.setChecked(False)
    assert not curves.lr_curve.isVisible() and not curves.loss_plot.getAxis("right").isVisible()
    curves.show_lr.setChecked(True)
    curves.set_data(CurveData("runs:1,2", {"a": [(1, 1.0)], "b": [(1, 2.0)]}, {}, "", 1))
    curves.flush()  # overlaid runs have no one schedule: no axis for it
    assert not curves.lr_curve.isVisible() and not curves.loss_plot.getAxis("right").isVisible()


def test_plots_follow_the_window_from_light_to_dark(qtbot, qapp):
    from PySide6.QtGui import QColor, QPalette

    curves = Curves()
    qtbot.addWidget(curves)
    light = qapp.palette()
    dark = QPalette(light)
    for role, colour in ((QPalette.ColorRole.Base, "#1f2937"),
                         (QPalette.ColorRole.Window, "#111827"),
                         (QPalette.ColorRole.Text, "#f9fafb")):
        dark.setColor(role, QColor(colour))
    plot = curves.loss_plot
    assert plot.backgroundBrush().color().name() == light.color(QPalette.ColorRole.Base).name()
    try:
        qapp.setPalette(dark)  # what a system switch to dark mode does to the app
        qtbot.waitUntil(lambda: plot.backgroundBrush().color().name() == "#1f2937")
        assert plot.getAxis("left").textPen().color().name() == "#f9fafb"
        curves.eval_plot.set_title("Evaluation (accuracy)")
        assert curves.eval_plot.getPlotItem().titleLabel.opts["color"] == "#f9fafb"
    finally:
        qapp.setPalette(light)
    qtbot.waitUntil(lambda: plot.backgroundBrush().color().name()
                    == light.color(QPalette.ColorRole.Base).name())
