"""Training: the config, the named recipes, the task (model + loss + locked-tower cache), the
loop as a generator of events, run folders, trackers and the dry run."""
