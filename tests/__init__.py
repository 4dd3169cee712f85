"""Test packages (unit, property, corpus, scenarios, e2e); see DESIGN.md."""
