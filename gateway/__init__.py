"""The door for SMS, USSD and calls: provider webhooks in, provider SDKs out."""
