def setting(**fields):
    """A change for ``JobRecords.update`` that gives the record these field values, whatever its state
    (the tests' way to put a job where a scenario starts)."""

    def change(record):
        for name, value in fields.items():
            setattr(record, name, value)

    return change
