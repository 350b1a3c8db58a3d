"""The embedded shapes world: procedural scenes (:mod:`.world`), the language people use about
them (:mod:`.language`) and exact predicates over a scene's objects (:mod:`.query`)."""
