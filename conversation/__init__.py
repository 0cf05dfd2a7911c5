"""The platform's conversation step: one inbound message → Rasa (or the fallback) → reply.

``bot/`` is only the Rasa project and its actions (they run in Rasa's own Python); this
package is the platform side that talks to it."""
