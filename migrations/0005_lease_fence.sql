CREATE TABLE `lease_fence` (
	`held` integer NOT NULL
);
