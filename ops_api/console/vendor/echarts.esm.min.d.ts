// Types of the vendored ECharts build: those of the npm package it was copied from (scripts/vendor_console.py).
export * from "echarts";
