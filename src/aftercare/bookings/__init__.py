"""Follow-up bookings: the clinic calendar, open slots, offers, appointments, reminders and the SMS conversation."""
