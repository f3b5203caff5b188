-- Daily precipitation per station (mm), for October 2021.
SELECT stationid, "date", SUM(value) AS precipitation
FROM weather
WHERE datatype = 'PRCP' AND year = 2021 AND month = 10
GROUP BY stationid, "date"
ORDER BY stationid, "date"
