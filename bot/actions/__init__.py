"""rasa-sdk custom actions for the Deme bot (run by `rasa run actions --actions actions`)."""
