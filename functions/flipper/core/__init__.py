"""The core both halves share: settings, the model, the store and its scripts, the audited write path."""
