"""Module.summary: the rows (indented path and type, output shape, parameters owned), the totals, depth roll-up,
shared layers, and that the model comes out of it exactly as it went in."""
import numpy as np
import pytest

from minception import nn


def small_cnn():
    return nn.Sequential(
        nn.ConvBNReLU(3, 8, 3, padding=1),     # conv 3*8*9 = 216, bn 2*8 = 16
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3),                   # 8*16*9 + 16 = 1,168
        nn.GlobalAvgPool2d(),
        nn.Dropout(0.2),
        nn.Linear(16, 10),                     # 16*10 + 10 = 170
    )


def parse(text):
    """The table body as (name cell, shape cell, params cell) triples, cut at the header's column positions."""
    lines = text.split("\n")
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    header = lines[rules[0] + 1]
    assert header.split() == ["Layer", "(type)", "Output", "shape", "Param", "#"]
    at = header.index("Output shape")
    return [(line[:at].rstrip(), line[at:].rsplit(None, 1)[0].strip(), line.split()[-1])
            for line in lines[rules[1] + 1:rules[2]]]


def test_summary_rows_and_totals_of_a_small_cnn():
    net = small_cnn()
    printed = []
    text = net.summary((2, 3, 8, 8), print_fn=printed.append)
    assert printed == [text]
    assert parse(text) == [
        ("Sequential", "(2, 10)", "0"),
        ("  0 (ConvBNReLU)", "(2, 8, 8, 8)", "0"),
        ("    0.conv (Conv2d)", "(2, 8, 8, 8)", "216"),
        ("    0.bn (BatchNorm2d)", "(2, 8, 8, 8)", "16"),
        ("  1 (MaxPool2d)", "(2, 8, 4, 4)", "0"),
        ("  2 (Conv2d)", "(2, 16, 2, 2)", "1,168"),
        ("  3 (GlobalAvgPool2d)", "(2, 16)", "0"),
        ("  4 (Dropout)", "(2, 16)", "0"),
        ("  5 (Linear)", "(2, 10)", "170"),
    ]
    assert "Total params: 1,570" in text
    assert "Trainable params: 1,570" in text
    assert "Non-trainable params: 0" in text
    assert "Buffer values (running statistics, not trained): 16" in text
    assert "Input shape: (2, 3, 8, 8)    Output shape: (2, 10)" in text


def test_summary_depth_rolls_deeper_parameters_into_the_shown_parent():
    text = small_cnn().summary((1, 3, 8, 8), depth=1, print_fn=None)
    table = parse(text)
    assert [name.split()[0] for name, _, _ in table] == ["Sequential", "0", "1", "2", "3", "4", "5"]
    assert [count for _, _, count in table] == ["0", "232", "0", "1,168", "0", "0", "170"]
    assert "conv" not in text.split("Total")[0]
    assert "Total params: 1,570" in text
    top = small_cnn().summary((1, 3, 8, 8), depth=0, print_fn=None)
    assert parse(top) == [("Sequential", "(1, 10)", "1,570")]


def test_summary_restores_modes_and_leaves_state_untouched():
    net = small_cnn()
    net[0].bn.eval()                               # a frozen BN inside a training model keeps its own mode
    before = net.state_dict()
    net.summary((1, 3, 8, 8), print_fn=None)
    assert net.training and net[4].training and not net[0].bn.training
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_summary_counts_frozen_and_shared_parameters_once():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 2))
    net[3].requires_grad_(False)
    text = net.summary((3, 4), print_fn=None)
    assert parse(text) == [("Sequential", "(3, 2)", "0"), ("  0 (Linear)", "(3, 4)", "20"),
                           ("  1 (ReLU)", "(3, 4)", "0"),
                           ("  0 (Linear)", "(3, 4)", "0"),          # second call of the shared layer
                           ("  3 (Linear)", "(3, 2)", "10")]
    assert "Total params: 30" in text and "Trainable params: 20" in text and "Non-trainable params: 10" in text


def test_summary_kernels_column_shows_windows_of_convolutions_and_pools():
    net = small_cnn()
    text = net.summary((2, 3, 8, 8), kernels=True, print_fn=None)
    lines = text.split("\n")
    header = lines[1]
    assert header.split() == ["Layer", "(type)", "Kernel", "Output", "shape", "Param", "#"]
    at = header.index("Kernel")
    kernels = {line[:at].strip(): line[at:header.index("Output shape")].strip() for line in lines[3:12]}
    assert kernels["0.conv (Conv2d)"] == "3x3 s1 p1"
    assert kernels["1 (MaxPool2d)"] == "2x2 s2 p0"
    assert kernels["2 (Conv2d)"] == "3x3 s1 p0"
    assert kernels["0.bn (BatchNorm2d)"] == kernels["5 (Linear)"] == ""
    assert [r.kernel for r in text.rows if r.type == "Conv2d"] == ["3x3 s1 p1", "3x3 s1 p0"]
    # without kernels=True the table is today's
    assert "Kernel" not in net.summary((2, 3, 8, 8), print_fn=None)
    # a box whose children are hidden by depth shows the window of its one convolution
    shallow = net.summary((2, 3, 8, 8), kernels=True, depth=1, print_fn=None)
    assert [r.kernel for r in shallow.rows][:3] == ["", "3x3 s1 p1", "2x2 s2 p0"]
    # non-square kernels and "same" padding show a pair
    odd = nn.Sequential(nn.Conv2d(3, 4, (1, 7), padding="same"), nn.AvgPool2d(3, stride=(1, 2), padding=1))
    assert [r.kernel for r in odd.summary((1, 3, 9, 9), kernels=True, print_fn=None).rows] == \
        ["", "1x7 s1 p0,3", "3x3 s1,2 p1"]


def test_summary_returns_the_table_with_its_numbers():
    table = small_cnn().summary((2, 3, 8, 8), print_fn=None)
    assert isinstance(table, str) and table.startswith("=")
    assert table.totals["params"] == 1570 and table.totals["trainable"] == 1570
    assert table.totals["buffer_values"] == 16
    assert [(r.path, r.type, r.params) for r in table.rows][:3] == [("", "Sequential", 0), ("0", "ConvBNReLU", 0),
                                                                     ("0.conv", "Conv2d", 216)]
    assert table.rows[0].output_shape == (2, 10) and sum(r.params for r in table.rows) == 1570


def test_summary_as_a_notebook_cells_last_line_shows_the_table_once(capsys):
    # A notebook cell ``net.summary(...)``: summary prints the table, then IPython displays the cell's value.
    # IPython asks ``_ipython_display_`` first (and then shows nothing else): it must not show the table again.
    table = small_cnn().summary((2, 3, 8, 8))
    table._ipython_display_()
    out = capsys.readouterr().out
    assert out.count("Total params: 1,570") == 1
    assert "Total params" not in repr(table) and repr(table).startswith("<Summary: 9 rows, 1,570 parameters")
    # not printed (print_fn=None): the value displays itself, once
    quiet = small_cnn().summary((2, 3, 8, 8), print_fn=None)
    assert capsys.readouterr().out == ""
    quiet._ipython_display_()
    assert capsys.readouterr().out.count("Total params: 1,570") == 1
    assert repr(quiet) == str(quiet)


def test_summary_displays_once_through_ipythons_own_formatter(capsys):
    formatters = pytest.importorskip("IPython.core.formatters")
    from IPython.lib.pretty import pretty
    shown = formatters.DisplayFormatter()
    table = small_cnn().summary((2, 3, 8, 8))
    data, _ = shown.format(table)             # what a cell's last line displays after the cell's own output
    assert data == {}
    assert capsys.readouterr().out.count("Total params") == 1
    quiet = small_cnn().summary((2, 3, 8, 8), print_fn=None)
    assert shown.format(quiet)[0] == {}
    assert capsys.readouterr().out.count("Total params") == 1
    assert pretty(table).startswith("<Summary:") and pretty(quiet) == str(quiet)
