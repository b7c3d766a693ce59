ALTER TABLE `quote_buckets` ADD `figures` text DEFAULT '{}' NOT NULL;--> statement-breakpoint
UPDATE `quote_buckets` SET `figures` = (
	SELECT json_group_object(j.key, json_array(j.value -> 'priceUsd', j.value -> 'rank', j.value -> 'marketCapUsd'))
	FROM json_each(`quote_buckets`.`quotes`) j
);
