"""What a notebook shows: ``charts`` (plotly figures) and ``views`` (every other renderer). No I/O."""
