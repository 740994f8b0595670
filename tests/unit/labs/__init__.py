"""Tests of the labs kit (labs/kit)."""
