"""The labelling flow (`petal_label_papers`, `petal_relabel_papers`): tasks, cleanup, timetable."""
