"""Tests for fnas_keras.fpga.workload: layer dicts -> workloads."""

import pytest

from fnas_keras.fpga import workload


def layer(class_name, config, input_shape, output_shape):
    return {"class_name": class_name, "config": config,
            "input_shape": input_shape, "output_shape": output_shape}


def only(parsed):
    assert len(parsed.stages) == 1
    return parsed.stages[0]


def test_conv2d_same_padding():
    w = only(workload.parse(layer(
        "Conv2D", {"filters": 16, "kernel_size": (5, 5), "strides": (1, 1),
                   "padding": "same"},
        (None, 28, 28, 3), (None, 28, 28, 16))))
    assert w[:8] == ("conv", 16, 3, 28, 28, 5, 1, 1)
    assert (w.H, w.pad_top) == (28, 2)
    assert w.macs == 16 * 3 * 28 * 28 * 25


def test_conv2d_strides_dilation_groups_and_lists_from_json():
    w = only(workload.parse(layer(
        "Conv2D", {"filters": 8, "kernel_size": [3, 3], "strides": [2, 2],
                   "padding": "valid", "dilation_rate": [1, 1],
                   "groups": 2},
        [None, 15, 15, 4], [None, 7, 7, 8])))
    assert (w.M, w.N, w.R, w.C, w.K, w.S, w.groups) == (8, 4, 7, 7, 3, 2, 2)
    assert w.pad_top == 0
    assert w.macs == 8 * 2 * 49 * 9
    d = only(workload.parse(layer(
        "Conv2D", {"filters": 8, "kernel_size": 3, "dilation_rate": 2,
                   "padding": "same"},
        (None, 10, 10, 4), (None, 10, 10, 8))))
    assert (d.D, d.Dw, d.pad_top) == (2, 2, 2)


def test_conv2d_channels_first():
    w = only(workload.parse(layer(
        "Conv2D", {"filters": 8, "kernel_size": 3, "padding": "valid",
                   "data_format": "channels_first"},
        (None, 4, 12, 10), (None, 8, 10, 8))))
    assert (w.M, w.N, w.R, w.C) == (8, 4, 10, 8)


def test_depthwise_is_one_group_per_channel():
    w = only(workload.parse(layer(
        "DepthwiseConv2D", {"kernel_size": 3, "strides": 2, "padding": "same",
                            "depth_multiplier": 1},
        (None, 16, 16, 32), (None, 8, 8, 32))))
    assert (w.M, w.N, w.groups, w.R, w.S) == (32, 32, 32, 8, 2)
    assert w.macs == 32 * 1 * 64 * 9


def test_separable_is_depthwise_then_pointwise():
    parsed = workload.parse(layer(
        "SeparableConv2D", {"filters": 24, "kernel_size": 3,
                            "padding": "same", "depth_multiplier": 2},
        (None, 8, 8, 6), (None, 8, 8, 24)))
    dw, pw = parsed.stages
    assert (dw.M, dw.N, dw.groups, dw.K) == (12, 6, 6, 3)
    assert (pw.M, pw.N, pw.groups, pw.K, pw.R) == (24, 12, 1, 1, 8)


def test_conv1d_uses_rows_for_the_sequence():
    w = only(workload.parse(layer(
        "Conv1D", {"filters": 4, "kernel_size": 3, "padding": "causal"},
        (None, 20, 2), (None, 20, 4))))
    assert (w.M, w.N, w.R, w.C, w.K, w.Kw, w.pad_top) == (4, 2, 20, 1, 3, 1,
                                                          2)


def test_dense_on_a_vector_and_on_a_feature_map():
    flat = only(workload.parse(layer("Dense", {"units": 10}, (None, 36),
                                     (None, 10))))
    assert (flat.M, flat.N, flat.R, flat.C, flat.K) == (10, 36, 1, 1, 1)
    grid = only(workload.parse(layer("Dense", {"units": 5},
                                     (None, 4, 6, 8), (None, 4, 6, 5))))
    assert (grid.M, grid.N, grid.R, grid.C) == (5, 8, 4, 6)
    seq = only(workload.parse(layer("Dense", {"units": 5}, (None, 7, 8),
                                    (None, 7, 5))))
    assert (seq.R, seq.C) == (7, 1)


def test_pooling_is_a_stream_pass():
    w = only(workload.parse(layer(
        "MaxPooling2D", {"pool_size": (2, 2), "strides": None,
                         "padding": "valid"},
        (None, 8, 8, 4), (None, 4, 4, 4))))
    assert (w.kind, w.K, w.S, w.in_words, w.out_words) == (
        "stream", 2, 2, 256, 64)
    assert w.macs == 0


def test_global_pooling_reads_every_row():
    for keep, out in ((False, (None, 4)), (True, (None, 1, 1, 4))):
        w = only(workload.parse(layer(
            "GlobalAveragePooling2D", {"keepdims": keep}, (None, 6, 6, 4),
            out)))
        assert (w.R, w.K, w.H, w.in_words, w.out_words) == (1, 6, 6, 144, 4)


def test_add_and_concatenate_read_all_inputs():
    add = only(workload.parse(layer("Add", {}, [(None, 4, 4, 8)] * 2,
                                    (None, 4, 4, 8))))
    assert (add.in_words, add.out_words) == (256, 128)
    cat = only(workload.parse(layer(
        "Concatenate", {"axis": -1}, [(None, 4, 4, 8), (None, 4, 4, 2)],
        (None, 4, 4, 10))))
    assert (cat.in_words, cat.out_words) == (160, 160)
    mul = only(workload.parse(layer(
        "Multiply", {}, [(None, 4, 4, 8), (None, 1, 1, 8)],
        (None, 4, 4, 8))))
    assert mul.in_words == 136


@pytest.mark.parametrize("class_name", [
    "InputLayer", "BatchNormalization", "Activation", "ReLU", "LeakyReLU",
    "ELU", "Softmax", "Flatten", "Reshape", "Dropout", "Rescaling",
    "Normalization"])
def test_folded_and_fused_layers_cost_nothing(class_name):
    parsed = workload.parse(layer(class_name, {}, (None, 4, 4, 2),
                                  (None, 4, 4, 2)))
    assert parsed.stages == ()


def test_zero_padding_shifts_rows():
    parsed = workload.parse(layer("ZeroPadding2D",
                                  {"padding": ((1, 2), (3, 4))},
                                  (None, 4, 4, 2), (None, 7, 11, 2)))
    assert parsed == workload.Parsed((), row_shift=1)


def test_unknown_layer_is_named_with_the_supported_ones():
    with pytest.raises(ValueError, match=r"unsupported layer 'LSTM'; "
                                         r"supported: .*Conv2D"):
        workload.parse(layer("LSTM", {}, (None, 4, 2), (None, 4)))


def test_undefined_shape_is_an_error():
    with pytest.raises(ValueError, match="fully defined"):
        workload.parse(layer("Conv2D", {"filters": 2, "kernel_size": 1},
                             (None, None, None, 3), (None, None, None, 2)))


def test_supported_covers_the_keras_applications_layers():
    names = set(workload.supported())
    assert {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv1D",
            "Dense", "MaxPooling2D", "AveragePooling2D",
            "GlobalAveragePooling2D", "GlobalMaxPooling2D",
            "BatchNormalization", "Add", "Concatenate", "Multiply",
            "ZeroPadding2D", "Flatten", "Reshape", "Dropout", "Rescaling",
            "Normalization", "InputLayer", "ReLU", "Activation"} <= names
