pub mod fake_drive;
