-- The coldest minimum, the warmest maximum and their difference, per day, over every station.
SELECT "date",
       MIN(CASE WHEN datatype = 'TMIN' THEN value END) AS lowest,
       MAX(CASE WHEN datatype = 'TMAX' THEN value END) AS highest,
       MAX(CASE WHEN datatype = 'TMAX' THEN value END) - MIN(CASE WHEN datatype = 'TMIN' THEN value END) AS temperature_range
FROM weather
WHERE datatype IN ('TMIN', 'TMAX')
GROUP BY "date"
ORDER BY "date"
