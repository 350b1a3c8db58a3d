"""The Train tab's form: one widget per :class:`engine.train.config.TrainConfig` field it shows; the
fields it does not show come from the preset it was filled from (``base``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QFileDialog, QFormLayout,
                               QGroupBox, QLabel, QLineEdit, QToolButton)

from engine.model.loading import project_config_names
from engine.train.config import TrainConfig, field_help

from .form_widgets import FloatBox, form_row, spin_box, weight_box
from .train_state import config_from_form

DEVICES = {"auto": "auto", "cuda": "CUDA", "cpu": "CPU"}


class TrainForm(QGroupBox):
    """The "Run" box: preset, data, model, loss weights, optimisation, device and folders."""

    def __init__(self, presets: Mapping[str, TrainConfig]):
        super().__init__("Run")
        self.base = next(iter(presets.values()))
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(presets))
        self.preset_combo.setToolTip("fill the form with a recipe (settings not on the form, such "
                                     "as tower locking and warm-up, come from it too)")
        self.dataset_combo = QComboBox()
        self.dataset_combo.addItems(["Shapes world", "Triples file (CSV/JSONL)"])
        self.triples_edit = QLineEdit()
        self.triples_edit.setPlaceholderText("image,caption,paraphrase,negation file")
        self.triples_button = QToolButton(text="…")
        self.scenes_spin = spin_box(16, 1_000_000, 256)
        self.eval_scenes_spin = spin_box(0, 100_000, 64)
        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.addItems(project_config_names())
        self.model_button = QToolButton(text="…")
        self.alpha_spin, self.beta_spin, self.gamma_spin = (weight_box() for _ in range(3))
        self.projections_spin = spin_box(1, 4096)
        self.projections_combo = QComboBox()
        self.projections_combo.addItems(["frozen", "learnable"])
        self.hard_negatives_check = QCheckBox("negations as extra contrastive columns")
        self.batch_spin = spin_box(1, 65_536, 8)
        self.lr_spin = FloatBox(1e-9, 10.0)
        self.epochs_spin = spin_box(1, 100_000)
        self.max_steps_spin = spin_box(0, 10_000_000, 100)
        self.max_steps_spin.setSpecialValueText("no limit")
        self.device_combo = QComboBox()
        for key, text in DEVICES.items():
            if key == "cuda" and not torch.cuda.is_available():
                text += " (none visible)"
            self.device_combo.addItem(text, key)
        self.out_dir_edit = QLineEdit()
        self.out_dir_button = QToolButton(text="…")
        self.zeroshot_edit = QLineEdit()
        self.zeroshot_edit.setPlaceholderText("optional: one sub-folder of images per class")
        self.zeroshot_button = QToolButton(text="…")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.addRow("Preset", self.preset_combo)
        form.addRow("Dataset", self.dataset_combo)
        form.addRow("Triples file", form_row(self.triples_edit, self.triples_button))
        form.addRow("Scenes / epoch", form_row(self.scenes_spin, QLabel("eval"), self.eval_scenes_spin))
        form.addRow("Model", form_row(self.model_combo, self.model_button))
        form.addRow("α  β  γ", form_row(self.alpha_spin, self.beta_spin, self.gamma_spin, stretch=None))
        form.addRow("Projections", form_row(self.projections_spin, self.projections_combo))
        form.addRow("Hard negatives", self.hard_negatives_check)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Epochs", form_row(self.epochs_spin, QLabel("max steps"), self.max_steps_spin))
        form.addRow("Device", self.device_combo)
        form.addRow("Output folder", form_row(self.out_dir_edit, self.out_dir_button))
        form.addRow("Zero-shot folder", form_row(self.zeroshot_edit, self.zeroshot_button))
        self.setLayout(form)

        for name, widget in self.field_widgets().items():  # one help text, the config's
            widget.setToolTip(f"{name}: {field_help(name)}")

        self.dataset_combo.currentIndexChanged.connect(self._on_dataset_kind)
        self.triples_button.clicked.connect(self._browse_triples)
        self.model_button.clicked.connect(self._browse_model)
        self.out_dir_button.clicked.connect(self._browse_out_dir)
        self.zeroshot_button.clicked.connect(self._browse_zeroshot)

    def field_widgets(self) -> dict[str, Any]:
        """TrainConfig field -> the widget that edits it."""
        return {**self._spin_fields(), "dataset": self.dataset_combo, "model": self.model_combo,
                "learnable_projections": self.projections_combo,
                "hard_negatives": self.hard_negatives_check, "device": self.device_combo,
                "out_dir": self.out_dir_edit, "zeroshot_dataset": self.zeroshot_edit}

    def _spin_fields(self) -> dict[str, QAbstractSpinBox]:
        """TrainConfig field -> the spin box that edits it."""
        return {"shapes_train_size": self.scenes_spin, "shapes_eval_size": self.eval_scenes_spin,
                "alpha": self.alpha_spin, "beta": self.beta_spin, "gamma": self.gamma_spin,
                "n_projections": self.projections_spin, "batch_size": self.batch_spin,
                "lr": self.lr_spin, "epochs": self.epochs_spin, "max_steps": self.max_steps_spin}

    def form_values(self) -> dict[str, Any]:
        """What the form says, keyed by TrainConfig field (input to :func:`config_from_form`)."""
        shapes = self.dataset_combo.currentIndex() == 0
        return {
            **{name: box.value() for name, box in self._spin_fields().items()},
            "dataset": "shapes" if shapes else self.triples_edit.text().strip(),
            "model": self.model_combo.currentText().strip(),
            "learnable_projections": self.projections_combo.currentIndex() == 1,
            "hard_negatives": self.hard_negatives_check.isChecked(),
            "device": self.device_combo.currentData(),
            "out_dir": self.out_dir_edit.text().strip(),
            "zeroshot_dataset": self.zeroshot_edit.text().strip() or None,
        }

    def set_form(self, cfg: TrainConfig) -> None:
        """Show ``cfg`` in the form; its other fields become the base of the next run."""
        self.base = replace(cfg, resume=None)
        for name, box in self._spin_fields().items():
            box.setValue(getattr(cfg, name))
        shapes = cfg.dataset == "shapes"
        self.dataset_combo.setCurrentIndex(0 if shapes else 1)
        if not shapes:
            self.triples_edit.setText(cfg.dataset)
        self.model_combo.setCurrentText(cfg.model)
        self.projections_combo.setCurrentIndex(int(cfg.learnable_projections))
        self.hard_negatives_check.setChecked(cfg.hard_negatives)
        device = self.device_combo.findData(cfg.device.split(":")[0])
        self.device_combo.setCurrentIndex(max(0, device))
        self.out_dir_edit.setText(cfg.out_dir)
        self.zeroshot_edit.setText(cfg.zeroshot_dataset or "")
        self._on_dataset_kind()

    def form_config(self) -> TrainConfig:
        """The config a click on Start would run (ValueError if the form cannot work)."""
        return config_from_form(self.form_values(), self.base)

    def _on_dataset_kind(self) -> None:
        shapes = self.dataset_combo.currentIndex() == 0
        for widget in (self.triples_edit, self.triples_button):
            widget.setEnabled(not shapes)
        for widget in (self.scenes_spin, self.eval_scenes_spin):
            widget.setEnabled(shapes)

    def _browse_triples(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Triples file", self.triples_edit.text(),
                                              "Triples (*.csv *.tsv *.jsonl *.json);;All files (*)")
        if path:
            self.triples_edit.setText(path)
            self.dataset_combo.setCurrentIndex(1)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Start from a checkpoint", "",
                                              "Checkpoints (*.pt *.pth *.bin *.safetensors)")
        if path:
            self.model_combo.setCurrentText(path)

    def _browse_out_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder", self.out_dir_edit.text())
        if path:
            self.out_dir_edit.setText(path)

    def _browse_zeroshot(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Zero-shot folder (one sub-folder per class)",
                                                self.zeroshot_edit.text())
        if path:
            self.zeroshot_edit.setText(path)
