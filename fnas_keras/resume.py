"""Resuming a search killed at any point.

keras-tuner writes its state files in place and, on reload, runs again every
trial that was ongoing. After a kill that can mean a half-written file, a
trial the saved oracle never started, or a trial trained to the end and then
trained again. `ResumableOracle` writes its files atomically, checks every
state file on reload and names a corrupt one, and repairs what a kill
between two saves left behind.
"""

from __future__ import annotations

import glob
import os
import shutil

import keras_tuner
from keras_tuner.engine import trial as trial_module

from fnas_keras import storage

TrialStatus = trial_module.TrialStatus


class ResumableOracle(keras_tuner.Oracle):
    """A keras-tuner Oracle whose search resumes after a kill at any point.

    Args:
        *args, **kwargs: As for `keras_tuner.Oracle`.

    Example:
        >>> class MyOracle(ResumableOracle):
        ...     def populate_space(self, trial_id):
        ...         return {"status": "RUNNING", "values": {}}
        >>> oracle = MyOracle(objective="val_accuracy", max_trials=5)
    """

    def save(self) -> None:
        """Writes oracle.json atomically."""
        storage.write_json(self._get_oracle_fname(), self.get_state())

    def reload(self) -> None:
        """Reloads, checking every state file and naming a corrupt one."""
        pattern = os.path.join(self._project_dir, "trial_*", "trial.json")
        for path in [self._get_oracle_fname(), *glob.glob(pattern)]:
            storage.read_json(path)
        super().reload()
        self._drop_unsaved_trials()
        self._end_reported_trials()

    def _drop_unsaved_trials(self) -> None:
        """Forgets trials whose trial.json outlived the oracle.json save.

        A kill inside create_trial can leave a trial the saved oracle never
        started; the restored controller draws it again under the same id.
        """
        started = set(self.start_order)
        for trial_id in [t for t in self.trials if t not in started]:
            del self.trials[trial_id]
            shutil.rmtree(self._get_trial_dir(trial_id), ignore_errors=True)

    def _end_reported_trials(self) -> None:
        """Ends, instead of retrying, trials a kill left after their fit.

        keras-tuner's reload retries every ongoing trial. One already in
        end_order died between end_trial's saves and is done; one whose
        objective reached update_trial died before end_trial and only lacks
        its ending. Neither is trained again.
        """
        for trial_id in list(self._retry_queue):
            trial = self.trials[trial_id]
            if trial_id in self.end_order:
                self._retry_queue.remove(trial_id)
            elif self._reported(trial):
                self._retry_queue.remove(trial_id)
                trial.status = TrialStatus.COMPLETED
                # Quietly: the display lost the trial's start with the kill.
                verbose, self.verbose = self.verbose, 0
                try:
                    self.end_trial(trial)
                finally:
                    self.verbose = verbose

    def _reported(self, trial) -> bool:
        """Whether every objective metric of a trial has been reported."""
        names = getattr(self.objective, "name_to_direction", None)
        names = names or [self.objective.name]
        return all(trial.metrics.exists(name) for name in names)

    def _save_trial(self, trial) -> None:
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        storage.write_json(path, trial.get_state())
