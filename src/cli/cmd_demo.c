/*
 * cmd_demo.c — `metasync demo`: loads a realistic sample estate into a running server (or prints
 * it as NDJSON with --print): a PostgreSQL warehouse with three databases, raw/staging/mart
 * schemas, 50 tables, 4 views and about 620 columns (PII/GDPR-tagged where they hold personal
 * data), a BI tool with two dashboards and their fields, the ETL processes between them and the
 * lineage links they create. Then it says where to look.
 *
 * Everything is deterministic, including event ids (demo-1, demo-2, …), so running it twice
 * changes nothing the second time: the server reports duplicates. Events are emitted parents
 * before children and posted in phases (containers; tables, views and dashboards; columns and
 * fields; processes; links), each phase acknowledged before the next is sent, so a server that
 * applies different asset types on different lanes still sees every parent first.
 */
#include "cli_http.h"
#include "ms_cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the estate ------------------------------------------------------------------------------ */

/*
 * A table or view. columns: "name type [flags]" entries separated by ';' — flags: '!' not
 * nullable, 'P' tagged PII, 'G' tagged GDPR. A staging table has columns NULL and copies the
 * columns of `from` (a warehouse-relative QN), then adds the loader's audit columns.
 */
typedef struct demo_table {
    const char *schema; /* warehouse-relative QN of the schema, e.g. "sales/raw" */
    const char *name;
    const char *type; /* "table" or "view" */
    const char *owner;
    long long rows; /* row_count; -1 for views */
    const char *description;
    const char *columns;
    const char *from;
} demo_table;

#define T(schema, name, owner, rows, desc, cols)                                                   \
    {                                                                                              \
        schema, name, "table", owner, rows, desc, cols, NULL                                       \
    }
#define STG(schema, name, rows, from)                                                              \
    {                                                                                              \
        schema, name, "table", "data-platform", rows,                                              \
            "Cleaned, typed and de-duplicated copy of " from ", loaded hourly by the ELT job.",    \
            NULL, from                                                                             \
    }
#define V(name, owner, desc, cols)                                                                 \
    {                                                                                              \
        "analytics/reporting", name, "view", owner, -1, desc, cols, NULL                           \
    }

static const demo_table demo_tables[] = {
    /* sales / raw: as landed from the order service, CRM and payment providers */
    T("sales/raw", "orders", "sales-engineering", 48213907,
      "One row per customer order placed on the web shop, the mobile app or in a store, as "
      "captured by the order service.",
      "order_id bigint !;customer_id bigint !;store_id bigint;order_number text !;status text !;"
      "currency char(3) !;subtotal numeric(12,2) !;tax_amount numeric(12,2);"
      "shipping_amount numeric(12,2);discount_amount numeric(12,2);total_amount numeric(12,2) !;"
      "shipping_address_id bigint;placed_at timestamptz !;updated_at timestamptz !"),
    T("sales/raw", "order_items", "sales-engineering", 131544220,
      "Line items of orders: one row per product per order.",
      "order_item_id bigint !;order_id bigint !;product_id bigint !;quantity integer !;"
      "unit_price numeric(12,2) !;discount_amount numeric(12,2);tax_amount numeric(12,2);"
      "line_total numeric(12,2) !;created_at timestamptz !;updated_at timestamptz"),
    T("sales/raw", "customers", "sales-engineering", 3921774,
      "Customer accounts from the CRM, with contact details and marketing consent.",
      "customer_id bigint !;external_id uuid;first_name text P G;last_name text P G;"
      "email text ! P G;phone text P G;date_of_birth date P G;gender text G;"
      "marketing_opt_in boolean !;loyalty_tier text;default_address_id bigint;country_code char(2);"
      "signup_source text;is_test_account boolean !;created_at timestamptz !;"
      "updated_at timestamptz !"),
    T("sales/raw", "payments", "sales-engineering", 51002311,
      "Payment attempts and captures reported by the payment providers.",
      "payment_id bigint !;order_id bigint !;payment_method text !;provider text !;"
      "provider_reference text;card_last4 char(4) P;card_brand text;amount numeric(12,2) !;"
      "currency char(3) !;status text !;authorized_at timestamptz;captured_at timestamptz"),
    T("sales/raw", "refunds", "sales-engineering", 2210458,
      "Refunds issued against orders, full or partial.",
      "refund_id bigint !;order_id bigint !;payment_id bigint !;amount numeric(12,2) !;"
      "currency char(3) !;reason text;status text !;requested_at timestamptz !;"
      "processed_at timestamptz"),
    T("sales/raw", "products", "merchandising", 84512,
      "Product catalogue: SKUs, categories, brands and list prices.",
      "product_id bigint !;sku text !;name text !;category text;subcategory text;brand text;"
      "supplier_id bigint;unit_cost numeric(12,2);list_price numeric(12,2) !;is_active boolean !;"
      "created_at timestamptz !;updated_at timestamptz"),
    T("sales/raw", "inventory", "supply-chain", 1690240,
      "Current stock per product and store, from the warehouse management system.",
      "inventory_id bigint !;product_id bigint !;store_id bigint !;quantity_on_hand integer !;"
      "quantity_reserved integer !;reorder_point integer;reorder_quantity integer;"
      "last_counted_at timestamptz;updated_at timestamptz !"),
    T("sales/raw", "shipments", "supply-chain", 45880123,
      "Parcels shipped for orders, with carrier tracking.",
      "shipment_id bigint !;order_id bigint !;carrier text !;tracking_number text;"
      "service_level text;address_id bigint !;shipped_at timestamptz;delivered_at timestamptz;"
      "estimated_delivery_date date;weight_kg numeric(8,3);status text !"),
    T("sales/raw", "addresses", "sales-engineering", 5120933,
      "Shipping and billing addresses of customers.",
      "address_id bigint !;customer_id bigint !;recipient_name text P G;address_line1 text ! P G;"
      "address_line2 text P G;city text !;region text;postal_code text P;country_code char(2) !;"
      "is_default boolean !;created_at timestamptz !;updated_at timestamptz"),
    T("sales/raw", "stores", "sales-engineering", 212,
      "Physical and online stores (sales channels).",
      "store_id bigint !;store_code text !;name text !;channel text !;city text;"
      "country_code char(2);opened_on date;closed_on date;manager_email text P"),
    T("sales/raw", "suppliers", "merchandising", 1304,
      "Suppliers of catalogue products, with their contacts.",
      "supplier_id bigint !;name text !;contact_name text P G;contact_email text P G;"
      "contact_phone text P G;country_code char(2);payment_terms_days integer;"
      "created_at timestamptz !"),
    T("sales/raw", "discounts", "growth-marketing", 18230, "Discount codes and promotions.",
      "discount_id bigint !;code text !;description text;discount_type text !;"
      "value numeric(12,2) !;starts_at timestamptz;ends_at timestamptz;max_redemptions integer;"
      "is_active boolean !"),

    /* sales / staging */
    STG("sales/staging", "stg_orders", 48210332, "sales/raw/orders"),
    STG("sales/staging", "stg_order_items", 131540981, "sales/raw/order_items"),
    STG("sales/staging", "stg_customers", 3918220, "sales/raw/customers"),
    STG("sales/staging", "stg_payments", 50998740, "sales/raw/payments"),
    STG("sales/staging", "stg_refunds", 2210398, "sales/raw/refunds"),
    STG("sales/staging", "stg_products", 84512, "sales/raw/products"),
    STG("sales/staging", "stg_inventory", 1690240, "sales/raw/inventory"),
    STG("sales/staging", "stg_shipments", 45871006, "sales/raw/shipments"),

    /* marketing / raw: ad platforms, tracking pipeline, email service */
    T("marketing/raw", "campaigns", "growth-marketing", 4120,
      "Marketing campaigns across paid, email and social channels.",
      "campaign_id bigint !;name text !;channel text !;objective text;status text !;"
      "budget numeric(14,2);currency char(3);start_date date;end_date date;owner_email text P;"
      "created_at timestamptz !;updated_at timestamptz"),
    T("marketing/raw", "ad_spend", "growth-marketing", 1893402,
      "Daily ad spend, impressions and clicks per campaign and ad group, from the ad platforms.",
      "ad_spend_id bigint !;campaign_id bigint !;platform text !;ad_group text;spend_date date !;"
      "impressions bigint;clicks bigint;spend numeric(12,2) !;currency char(3) !;"
      "loaded_at timestamptz"),
    T("marketing/raw", "sessions", "web-analytics", 402118334,
      "Web and app sessions from the tracking pipeline.",
      "session_id text !;anonymous_id text !;customer_id bigint;started_at timestamptz !;"
      "ended_at timestamptz;landing_page text;referrer text;utm_source text;utm_medium text;"
      "utm_campaign text;device_type text;browser text;country_code char(2);ip_address inet P G"),
    T("marketing/raw", "page_views", "web-analytics", 1873220981,
      "Page views from the tracking pipeline.",
      "page_view_id text !;session_id text !;anonymous_id text !;customer_id bigint;url text !;"
      "path text;title text;referrer text;viewed_at timestamptz !;time_on_page_ms integer;"
      "user_agent text"),
    T("marketing/raw", "email_sends", "crm-marketing", 98234110,
      "Marketing and transactional emails sent by the email service.",
      "send_id bigint !;campaign_id bigint;customer_id bigint;email_address text ! P G;"
      "template text !;subject text;sent_at timestamptz !;provider text;provider_message_id text"),
    T("marketing/raw", "email_events", "crm-marketing", 154023991,
      "Opens, clicks, bounces and unsubscribes of sent emails.",
      "email_event_id bigint !;send_id bigint !;event_type text !;occurred_at timestamptz !;"
      "link_url text;user_agent text;ip_address inet P G;bounce_reason text"),
    T("marketing/raw", "leads", "growth-marketing", 812345,
      "Leads captured by forms and events before they become customers.",
      "lead_id bigint !;full_name text P G;email text P G;phone text P G;company text;"
      "job_title text;lead_source text;campaign_id bigint;score integer;status text !;"
      "converted_customer_id bigint;created_at timestamptz !;updated_at timestamptz"),
    T("marketing/raw", "utm_touchpoints", "web-analytics", 220193847,
      "Marketing touchpoints (UTM-tagged visits) per visitor, for attribution.",
      "touchpoint_id bigint !;anonymous_id text !;customer_id bigint;session_id text;"
      "utm_source text;utm_medium text;utm_campaign text;utm_content text;"
      "touched_at timestamptz !"),

    /* marketing / staging */
    STG("marketing/staging", "stg_campaigns", 4120, "marketing/raw/campaigns"),
    STG("marketing/staging", "stg_ad_spend", 1893402, "marketing/raw/ad_spend"),
    STG("marketing/staging", "stg_sessions", 401977012, "marketing/raw/sessions"),
    STG("marketing/staging", "stg_page_views", 1872907331, "marketing/raw/page_views"),
    STG("marketing/staging", "stg_email_events", 154011876, "marketing/raw/email_events"),
    STG("marketing/staging", "stg_leads", 811902, "marketing/raw/leads"),

    /* analytics / mart: the modelled layer the dashboards read */
    T("analytics/mart", "customer_360", "customer-analytics", 3874410,
      "One row per customer with orders, revenue, engagement and churn risk: the single view of "
      "the customer used by CRM, support and the customer-health dashboard.",
      "customer_id bigint !;email text P G;full_name text P G;phone text P G;country_code char(2);"
      "loyalty_tier text;first_order_at timestamptz;last_order_at timestamptz;"
      "lifetime_orders integer !;lifetime_revenue numeric(14,2) !;lifetime_refunds numeric(14,2) !;"
      "avg_order_value numeric(12,2);sessions_30d integer;page_views_30d integer;"
      "last_campaign text;acquisition_channel text;churn_risk_score numeric(5,4);"
      "updated_at timestamptz !"),
    T("analytics/mart", "fct_orders", "finance-analytics", 48210332,
      "Orders with amounts net of discounts and refunds. Grain: one row per order.",
      "order_id bigint !;order_number text !;customer_id bigint !;store_id bigint;"
      "order_date date !;status text !;currency char(3) !;subtotal numeric(12,2);"
      "discount_amount numeric(12,2);tax_amount numeric(12,2);shipping_amount numeric(12,2);"
      "total_amount numeric(12,2) !;refunded_amount numeric(12,2);item_count integer !"),
    T("analytics/mart", "fct_order_items", "finance-analytics", 131540981,
      "Order lines with cost and margin. Grain: one row per order line.",
      "order_item_id bigint !;order_id bigint !;product_id bigint !;order_date date !;"
      "quantity integer !;unit_price numeric(12,2) !;discount_amount numeric(12,2);"
      "line_total numeric(12,2) !;unit_cost numeric(12,2);gross_margin numeric(12,2)"),
    T("analytics/mart", "fct_payments", "finance-analytics", 50998740,
      "Captured payments converted to USD. Grain: one row per payment.",
      "payment_id bigint !;order_id bigint !;payment_date date !;payment_method text !;"
      "provider text !;amount numeric(12,2) !;currency char(3) !;amount_usd numeric(12,2);"
      "status text !;captured_at timestamptz"),
    T("analytics/mart", "fct_refunds", "finance-analytics", 2210398,
      "Refunds with their order context. Grain: one row per refund.",
      "refund_id bigint !;order_id bigint !;refund_date date !;amount numeric(12,2) !;"
      "amount_usd numeric(12,2);reason text;status text !;days_since_order integer"),
    T("analytics/mart", "dim_customers", "customer-analytics", 4102337,
      "Customer dimension, slowly changing (type 2): one row per customer version.",
      "customer_key bigint !;customer_id bigint !;email text P G;first_name text P G;"
      "last_name text P G;city text;country_code char(2);loyalty_tier text;"
      "marketing_opt_in boolean;signup_date date;valid_from timestamptz !;valid_to timestamptz;"
      "is_current boolean !"),
    T("analytics/mart", "dim_products", "merchandising", 91877,
      "Product dimension with supplier, slowly changing (type 2).",
      "product_key bigint !;product_id bigint !;sku text !;product_name text !;category text;"
      "subcategory text;brand text;supplier_name text;list_price numeric(12,2);"
      "unit_cost numeric(12,2);is_active boolean !;valid_from timestamptz !"),
    T("analytics/mart", "dim_date", "data-platform", 14610,
      "Calendar dimension from 2000 to 2039 with fiscal periods and holidays.",
      "date_key integer !;date date !;day_of_week smallint !;day_name text !;"
      "day_of_month smallint !;day_of_year smallint !;week_of_year smallint !;month smallint !;"
      "month_name text !;quarter smallint !;year smallint !;is_weekend boolean !;"
      "is_holiday boolean !;fiscal_period text"),
    T("analytics/mart", "fct_inventory_daily", "supply-chain", 61694760,
      "Daily stock snapshot per product and store. Grain: product x store x day.",
      "snapshot_date date !;product_id bigint !;store_id bigint !;quantity_on_hand integer !;"
      "quantity_reserved integer !;quantity_available integer !;stock_value numeric(14,2);"
      "days_of_cover numeric(8,2);is_below_reorder_point boolean !"),
    T("analytics/mart", "fct_sessions", "web-analytics", 401977012,
      "Sessions with page-view counts and conversion. Grain: one row per session.",
      "session_id text !;customer_id bigint;session_date date !;started_at timestamptz !;"
      "duration_seconds integer;page_views integer !;landing_page text;utm_source text;"
      "utm_medium text;utm_campaign text;device_type text;converted boolean !;order_id bigint"),
    T("analytics/mart", "fct_campaign_performance", "growth-marketing", 1204388,
      "Daily spend, traffic, orders and return on ad spend per campaign.",
      "campaign_id bigint !;report_date date !;channel text !;impressions bigint;clicks bigint;"
      "spend numeric(12,2);sessions integer;orders integer;revenue numeric(14,2);"
      "ctr numeric(8,6);cpc numeric(10,4);roas numeric(10,4);cpa numeric(12,2)"),
    T("analytics/mart", "fct_marketing_attribution", "growth-marketing", 96233120,
      "Order revenue attributed to marketing touchpoints (linear and last-touch models).",
      "order_id bigint !;customer_id bigint !;touchpoint_id bigint !;campaign_id bigint;"
      "channel text;attribution_model text !;attribution_weight numeric(6,5) !;"
      "attributed_revenue numeric(14,2) !;touched_at timestamptz !;converted_at timestamptz !"),
    T("analytics/mart", "fct_revenue_daily", "finance-analytics", 3120455,
      "Gross and net revenue per day, store and channel: the finance source of truth.",
      "revenue_date date !;store_id bigint;channel text;currency char(3) !;orders integer !;"
      "gross_revenue numeric(14,2) !;discounts numeric(14,2);refunds numeric(14,2);"
      "net_revenue numeric(14,2) !;gross_margin numeric(14,2);new_customers integer"),
    T("analytics/mart", "dim_campaigns", "growth-marketing", 4120,
      "Campaign dimension with budgets converted to USD.",
      "campaign_key bigint !;campaign_id bigint !;campaign_name text !;channel text !;"
      "objective text;status text;budget_usd numeric(14,2);start_date date;end_date date;"
      "owner_email text P"),
    T("analytics/mart", "fct_customer_ltv", "customer-analytics", 29877112,
      "Cumulative and predicted lifetime value per customer and month since first order.",
      "customer_id bigint !;cohort_month date !;months_since_first_order integer !;orders integer "
      "!;"
      "revenue numeric(14,2) !;cumulative_revenue numeric(14,2) !;predicted_ltv_12m numeric(14,2);"
      "margin numeric(14,2);computed_at timestamptz !"),
    T("analytics/mart", "fct_churn_signals", "customer-analytics", 3874410,
      "Daily churn features and risk score per customer, from the churn model.",
      "customer_id bigint !;signal_date date !;days_since_last_order integer;orders_90d integer;"
      "sessions_30d integer;email_open_rate_90d numeric(6,4);refund_rate numeric(6,4);"
      "support_tickets_90d integer;churn_risk_score numeric(5,4) !;model_version text !"),

    /* analytics / reporting: views the BI tool queries */
    V("v_revenue_by_month", "finance-analytics",
      "Monthly revenue, orders and refund rate per channel.",
      "month date !;channel text;currency char(3);orders bigint;gross_revenue numeric;"
      "net_revenue numeric;refund_rate numeric"),
    V("v_active_customers", "customer-analytics",
      "Customers who ordered in the last 365 days, with value and churn risk.",
      "customer_id bigint;email text P G;full_name text P G;loyalty_tier text;"
      "last_order_at timestamptz;lifetime_revenue numeric(14,2);sessions_30d integer;"
      "churn_risk_score numeric(5,4)"),
    V("v_campaign_roi", "growth-marketing", "Spend, attributed revenue and ROI per campaign.",
      "campaign_id bigint;campaign_name text;channel text;spend numeric;"
      "attributed_revenue numeric;roas numeric;cpa numeric"),
    V("v_top_products", "merchandising", "Best-selling products of the last 90 days.",
      "product_id bigint;sku text;product_name text;category text;units_sold bigint;"
      "revenue numeric;margin_pct numeric"),
};

/* Descriptions of common columns (the others have none). */
static const char *const demo_column_docs[][2] = {
    {"customer_id", "Identifier of the customer account (CRM)."},
    {"order_id", "Identifier of the order."},
    {"product_id", "Identifier of the product."},
    {"email", "Email address of the person."},
    {"email_address", "Email address the message was sent to."},
    {"phone", "Phone number in E.164 format."},
    {"first_name", "Given name."},
    {"last_name", "Family name."},
    {"full_name", "Given and family name."},
    {"recipient_name", "Name of the person receiving the parcel."},
    {"address_line1", "Street and number."},
    {"address_line2", "Apartment, suite, building."},
    {"date_of_birth", "Date of birth, for age checks and birthday offers."},
    {"ip_address", "Client IP address as seen by the tracker."},
    {"currency", "ISO 4217 currency code."},
    {"country_code", "ISO 3166-1 alpha-2 country code."},
    {"status", "Lifecycle status."},
    {"total_amount", "Amount charged, including tax and shipping, net of discounts."},
    {"net_revenue", "Gross revenue minus discounts and refunds."},
    {"churn_risk_score", "Probability (0..1) that the customer stops ordering in 90 days."},
    {"created_at", "When the row was created in the source system."},
    {"updated_at", "When the row last changed in the source system."},
    {"_loaded_at", "When the ELT job loaded the row."},
    {"_source_batch_id", "Identifier of the ELT load that wrote the row."},
};

#define STAGING_AUDIT_COLUMNS "_loaded_at timestamptz !;_source_batch_id text !"

/* The (abridged) SQL definition of reporting view `name`. */
static const char *view_sql(const char *name)
{
    if (strcmp(name, "v_revenue_by_month") == 0)
        return "select date_trunc('month', revenue_date) as month, channel, currency, "
               "sum(orders), sum(gross_revenue), sum(net_revenue), sum(refunds)/nullif(sum("
               "gross_revenue),0) from mart.fct_revenue_daily group by 1, 2, 3";
    if (strcmp(name, "v_active_customers") == 0)
        return "select customer_id, email, full_name, loyalty_tier, last_order_at, "
               "lifetime_revenue, sessions_30d, churn_risk_score from mart.customer_360 where "
               "last_order_at > now() - interval '365 days'";
    if (strcmp(name, "v_campaign_roi") == 0)
        return "select c.campaign_id, c.campaign_name, c.channel, sum(p.spend), "
               "sum(a.attributed_revenue), ... from mart.dim_campaigns c join "
               "mart.fct_campaign_performance p using (campaign_id) join "
               "mart.fct_marketing_attribution a using (campaign_id) group by 1, 2, 3";
    return "select product_id, sku, product_name, category, sum(quantity), sum(line_total), "
           "sum(gross_margin)/nullif(sum(line_total),0) from mart.fct_order_items join "
           "mart.dim_products using (product_id) where order_date > current_date - 90 group by "
           "1, 2, 3, 4";
}

/* A lineage step. inputs/outputs: ';'-separated QNs; those not starting with "bi/" are relative
 * to the warehouse connection. */
typedef struct demo_process {
    const char *qn;
    const char *description;
    const char *engine;
    const char *schedule;
    const char *inputs;
    const char *outputs;
} demo_process;

#define MART(name, desc, inputs)                                                                   \
    {                                                                                              \
        "warehouse/analytics/etl/build_" name, desc, "dbt", "0 * * * *", inputs,                   \
            "analytics/mart/" name                                                                 \
    }

static const demo_process demo_processes[] = {
    MART("fct_orders", "Builds fct_orders from staged orders, items and refunds.",
         "sales/staging/stg_orders;sales/staging/stg_order_items;sales/staging/stg_refunds"),
    MART("fct_order_items", "Builds fct_order_items with product cost and margin.",
         "sales/staging/stg_order_items;sales/staging/stg_products"),
    MART("fct_payments", "Builds fct_payments, converting amounts to USD.",
         "sales/staging/stg_payments"),
    MART("fct_refunds", "Builds fct_refunds with order context.",
         "sales/staging/stg_refunds;sales/staging/stg_orders"),
    MART("dim_customers", "Builds the type-2 customer dimension.",
         "sales/staging/stg_customers;sales/raw/addresses"),
    MART("dim_products", "Builds the type-2 product dimension with supplier names.",
         "sales/staging/stg_products;sales/raw/suppliers"),
    MART("fct_inventory_daily", "Snapshots stock levels every day.",
         "sales/staging/stg_inventory;sales/staging/stg_products"),
    MART("fct_sessions", "Sessionises page views and flags converting sessions.",
         "marketing/staging/stg_sessions;marketing/staging/stg_page_views;"
         "sales/staging/stg_orders"),
    MART("dim_campaigns", "Builds the campaign dimension.", "marketing/staging/stg_campaigns"),
    MART("fct_campaign_performance", "Joins ad spend, sessions and orders per campaign and day.",
         "marketing/staging/stg_campaigns;marketing/staging/stg_ad_spend;"
         "analytics/mart/fct_sessions;analytics/mart/fct_orders"),
    MART("fct_marketing_attribution", "Attributes order revenue to touchpoints.",
         "marketing/raw/utm_touchpoints;analytics/mart/fct_orders;analytics/mart/dim_campaigns"),
    MART("fct_revenue_daily", "Aggregates revenue per day, store and channel.",
         "analytics/mart/fct_orders;analytics/mart/fct_refunds;analytics/mart/dim_customers"),
    MART("fct_customer_ltv", "Computes cumulative and predicted lifetime value.",
         "analytics/mart/fct_orders;analytics/mart/dim_customers"),
    MART("fct_churn_signals", "Computes churn features and scores them with the churn model.",
         "analytics/mart/fct_orders;analytics/mart/fct_sessions;"
         "marketing/staging/stg_email_events;analytics/mart/fct_refunds"),
    MART("customer_360",
         "Builds the single customer view from the customer, order, session, "
         "attribution and churn models.",
         "analytics/mart/dim_customers;analytics/mart/fct_orders;analytics/mart/fct_refunds;"
         "analytics/mart/fct_sessions;analytics/mart/fct_marketing_attribution;"
         "analytics/mart/fct_churn_signals;marketing/staging/stg_leads"),
    {"bi/extracts/revenue-overview", "Refreshes the Revenue overview dashboard's dataset.",
     "superset", "*/15 * * * *",
     "analytics/mart/fct_revenue_daily;analytics/reporting/v_revenue_by_month;"
     "analytics/reporting/v_top_products",
     "bi/revenue-overview"},
    {"bi/extracts/customer-health", "Refreshes the Customer health dashboard's dataset.",
     "superset", "0 * * * *",
     "analytics/mart/customer_360;analytics/reporting/v_active_customers;"
     "analytics/mart/fct_churn_signals;analytics/mart/fct_customer_ltv",
     "bi/customer-health"},
};

/* Where the reporting views read from (linked without a process: the view is its own SQL). */
static const char *const demo_view_sources[][2] = {
    {"v_revenue_by_month", "analytics/mart/fct_revenue_daily;analytics/mart/fct_refunds"},
    {"v_active_customers", "analytics/mart/customer_360"},
    {"v_campaign_roi", "analytics/mart/fct_campaign_performance;"
                       "analytics/mart/fct_marketing_attribution;analytics/mart/dim_campaigns"},
    {"v_top_products", "analytics/mart/fct_order_items;analytics/mart/dim_products"},
};

typedef struct demo_field {
    const char *dashboard;
    const char *name;
    const char *data_type;
    const char *expression;
    const char *tags; /* NULL or a JSON array */
} demo_field;

static const demo_field demo_fields[] = {
    {"revenue-overview", "net_revenue", "numeric", "SUM(fct_revenue_daily.net_revenue)", NULL},
    {"revenue-overview", "gross_revenue", "numeric", "SUM(fct_revenue_daily.gross_revenue)", NULL},
    {"revenue-overview", "orders", "bigint", "SUM(fct_revenue_daily.orders)", NULL},
    {"revenue-overview", "average_order_value", "numeric",
     "SUM(fct_revenue_daily.net_revenue) / NULLIF(SUM(fct_revenue_daily.orders), 0)", NULL},
    {"revenue-overview", "refund_rate", "numeric", "AVG(v_revenue_by_month.refund_rate)", NULL},
    {"revenue-overview", "revenue_date", "date", "fct_revenue_daily.revenue_date", NULL},
    {"revenue-overview", "channel", "text", "fct_revenue_daily.channel", NULL},
    {"revenue-overview", "top_product", "text", "v_top_products.product_name", NULL},
    {"customer-health", "active_customers", "bigint",
     "COUNT(DISTINCT v_active_customers.customer_id)", NULL},
    {"customer-health", "at_risk_customers", "bigint",
     "COUNT_IF(customer_360.churn_risk_score > 0.7)", NULL},
    {"customer-health", "avg_churn_risk", "numeric", "AVG(customer_360.churn_risk_score)", NULL},
    {"customer-health", "lifetime_revenue", "numeric", "SUM(customer_360.lifetime_revenue)", NULL},
    {"customer-health", "predicted_ltv_12m", "numeric", "AVG(fct_customer_ltv.predicted_ltv_12m)",
     NULL},
    {"customer-health", "loyalty_tier", "text", "customer_360.loyalty_tier", NULL},
    {"customer-health", "customer_email", "text", "customer_360.email", "[\"GDPR\",\"PII\"]"},
    {"customer-health", "customer_name", "text", "customer_360.full_name", "[\"GDPR\",\"PII\"]"},
};

/* ---- event generation ------------------------------------------------------------------------ */

enum { PH_CONTAINERS, PH_ASSETS, PH_FIELDS, PH_PROCESSES, PH_LINKS, PH_COUNT };
static const char *const phase_names[PH_COUNT] = {
    "connections, databases, schemas", "tables, views, dashboards", "columns, dashboard fields",
    "processes", "lineage links"};

enum {
    TY_CONNECTION,
    TY_DATABASE,
    TY_SCHEMA,
    TY_TABLE,
    TY_VIEW,
    TY_COLUMN,
    TY_DASHBOARD,
    TY_BI_FIELD,
    TY_PROCESS,
    TY_COUNT
};
static const char *const type_names[TY_COUNT] = {"connection", "database", "schema",
                                                 "table",      "view",     "column",
                                                 "dashboard",  "bi_field", "process"};

/* The generated estate: one NDJSON body per phase, plus counts. */
typedef struct demo {
    ms_buf phase[PH_COUNT];
    long first_id[PH_COUNT]; /* id number of the first event of each phase */
    long nevents[PH_COUNT];
    long next_id;
    long types[TY_COUNT];
    long links, pii, gdpr;
    int pass; /* the phase being generated: events of other phases are skipped */
} demo;

/* Appends `"key":` to an attribute object under construction (with a comma when needed). */
static void akey(ms_buf *a, const char *key)
{
    if (a->len > 1) ms_buf_putc(a, ',');
    ms_buf_put_jstr(a, key);
    ms_buf_putc(a, ':');
}

/* astr/aint/abool append one string/integer/boolean member to an attribute object. */
static void astr(ms_buf *a, const char *key, const char *v)
{
    akey(a, key);
    ms_buf_put_jstr(a, v);
}

static void aint(ms_buf *a, const char *key, long long v)
{
    akey(a, key);
    ms_buf_printf(a, "%lld", v);
}

static void abool(ms_buf *a, const char *key, bool v)
{
    akey(a, key);
    ms_buf_puts(a, v ? "true" : "false");
}

/* Expands a demo-relative QN: names starting with "bi/" stay, others get "warehouse/". */
static void full_qn(ms_buf *out, const char *rel, size_t n)
{
    if (!(n >= 3 && strncmp(rel, "bi/", 3) == 0)) ms_buf_puts(out, "warehouse/");
    ms_buf_append(out, rel, n);
}

/* Appends a JSON array of the ';'-separated relative QNs in list, each expanded with full_qn. */
static void put_qn_array(ms_buf *a, const char *list)
{
    ms_buf_putc(a, '[');
    for (const char *p = list; *p;) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        ms_buf qn = MS_BUF_INIT;
        full_qn(&qn, p, n);
        if (p != list) ms_buf_putc(a, ',');
        ms_buf_put_jstr(a, ms_buf_cstr(&qn));
        ms_buf_free(&qn);
        p = semi ? semi + 1 : p + n;
    }
    ms_buf_putc(a, ']');
}

/*
 * Appends one upsert event to phase ph of d: type, qualified name qn, parent (NULL for none),
 * attributes (a complete JSON object text), tags (NULL or a JSON array text). The name is the
 * last segment of qn.
 */
static void upsert(demo *d, int ph, int ty, const char *qn, const char *parent, const char *attrs,
                   const char *tags)
{
    if (ph != d->pass) return;
    ms_buf *o = &d->phase[ph];
    const char *slash = strrchr(qn, '/');
    if (d->nevents[ph]++ == 0) d->first_id[ph] = d->next_id;
    ms_buf_printf(o, "{\"id\":\"demo-%ld\",\"op\":\"upsert\",\"type\":", d->next_id++);
    ms_buf_put_jstr(o, type_names[ty]);
    ms_buf_puts(o, ",\"qualified_name\":");
    ms_buf_put_jstr(o, qn);
    if (parent) {
        ms_buf_puts(o, ",\"parent\":");
        ms_buf_put_jstr(o, parent);
    }
    ms_buf_puts(o, ",\"name\":");
    ms_buf_put_jstr(o, slash ? slash + 1 : qn);
    ms_buf_puts(o, ",\"attributes\":");
    ms_buf_puts(o, attrs);
    if (tags) {
        ms_buf_puts(o, ",\"tags\":");
        ms_buf_puts(o, tags);
        if (strstr(tags, "\"PII\"")) d->pii++;
        if (strstr(tags, "\"GDPR\"")) d->gdpr++;
    }
    ms_buf_puts(o, "}\n");
    d->types[ty]++;
}

/* Appends a link event from → to (full QNs), via the process QN (NULL for none). */
static void link_ev(demo *d, const char *from, const char *to, const char *via)
{
    if (d->pass != PH_LINKS) return;
    ms_buf *o = &d->phase[PH_LINKS];
    if (d->nevents[PH_LINKS]++ == 0) d->first_id[PH_LINKS] = d->next_id;
    ms_buf_printf(o, "{\"id\":\"demo-%ld\",\"op\":\"link\",\"from\":", d->next_id++);
    ms_buf_put_jstr(o, from);
    ms_buf_puts(o, ",\"to\":");
    ms_buf_put_jstr(o, to);
    if (via) {
        ms_buf_puts(o, ",\"via\":");
        ms_buf_put_jstr(o, via);
    }
    ms_buf_puts(o, "}\n");
    d->links++;
}

/* Links every input to every output (';'-separated relative QN lists), via process via. */
static void link_all(demo *d, const char *inputs, const char *outputs, const char *via)
{
    for (const char *i = inputs; *i;) {
        const char *isemi = strchr(i, ';');
        size_t in = isemi ? (size_t)(isemi - i) : strlen(i);
        for (const char *o = outputs; *o;) {
            const char *osemi = strchr(o, ';');
            size_t on = osemi ? (size_t)(osemi - o) : strlen(o);
            ms_buf from = MS_BUF_INIT, to = MS_BUF_INIT;
            full_qn(&from, i, in);
            full_qn(&to, o, on);
            link_ev(d, ms_buf_cstr(&from), ms_buf_cstr(&to), via);
            ms_buf_free(&from);
            ms_buf_free(&to);
            o = osemi ? osemi + 1 : o + on;
        }
        i = isemi ? isemi + 1 : i + in;
    }
}

/* The table whose warehouse-relative QN is rel_qn, or NULL. */
static const demo_table *find_table(const char *rel_qn)
{
    for (size_t i = 0; i < sizeof demo_tables / sizeof demo_tables[0]; i++) {
        const demo_table *t = &demo_tables[i];
        size_t sl = strlen(t->schema);
        if (strncmp(rel_qn, t->schema, sl) == 0 && rel_qn[sl] == '/' &&
            strcmp(rel_qn + sl + 1, t->name) == 0)
            return t;
    }
    return NULL;
}

/* The description of a column called name, or NULL when it has none. */
static const char *column_doc(const char *name)
{
    for (size_t i = 0; i < sizeof demo_column_docs / sizeof demo_column_docs[0]; i++)
        if (strcmp(demo_column_docs[i][0], name) == 0) return demo_column_docs[i][1];
    return NULL;
}

/* Emits the columns described by spec (see demo_table) under table QN tqn, numbering ordinals
 * from *ordinal + 1. */
static void emit_columns(demo *d, const char *tqn, const char *spec, int *ordinal)
{
    for (const char *p = spec; *p;) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        char entry[160], *save = NULL;
        snprintf(entry, sizeof entry, "%.*s", (int)n, p);
        const char *name = strtok_r(entry, " ", &save);
        const char *dtype = strtok_r(NULL, " ", &save);
        bool notnull = false, pii = false, gdpr = false;
        for (const char *f; (f = strtok_r(NULL, " ", &save));) {
            notnull |= strchr(f, '!') != NULL;
            pii |= strchr(f, 'P') != NULL;
            gdpr |= strchr(f, 'G') != NULL;
        }
        ms_buf qn = MS_BUF_INIT, a = MS_BUF_INIT;
        ms_buf_printf(&qn, "%s/%s", tqn, name);
        ms_buf_putc(&a, '{');
        astr(&a, "data_type", dtype);
        abool(&a, "nullable", !notnull);
        aint(&a, "ordinal", ++*ordinal);
        const char *doc = column_doc(name);
        if (doc) astr(&a, "description", doc);
        ms_buf_putc(&a, '}');
        const char *tags = pii && gdpr ? "[\"GDPR\",\"PII\"]"
                           : pii       ? "[\"PII\"]"
                           : gdpr      ? "[\"GDPR\"]"
                                       : NULL;
        upsert(d, PH_FIELDS, TY_COLUMN, ms_buf_cstr(&qn), tqn, ms_buf_cstr(&a), tags);
        ms_buf_free(&qn);
        ms_buf_free(&a);
        p = semi ? semi + 1 : p + n;
    }
}

/* Emits the events of phase d->pass of the estate (the same walk runs once per phase). */
static void demo_emit(demo *d)
{
    ms_buf a = MS_BUF_INIT, qn = MS_BUF_INIT;

    /* connections */
    ms_buf_putc(&a, '{');
    astr(&a, "adapter", "postgresql");
    astr(&a, "host", "warehouse.db.internal.example.com");
    aint(&a, "port", 5432);
    astr(&a, "version", "15.4");
    astr(&a, "description", "The company data warehouse (PostgreSQL), loaded by the ELT jobs.");
    astr(&a, "owner", "data-platform");
    ms_buf_putc(&a, '}');
    upsert(d, PH_CONTAINERS, TY_CONNECTION, "warehouse", NULL, ms_buf_cstr(&a), NULL);
    ms_buf_reset(&a);
    ms_buf_putc(&a, '{');
    astr(&a, "adapter", "superset");
    astr(&a, "host", "bi.internal.example.com");
    astr(&a, "url", "https://bi.internal.example.com");
    astr(&a, "description", "Apache Superset: the company's dashboards and charts.");
    astr(&a, "owner", "analytics-engineering");
    ms_buf_putc(&a, '}');
    upsert(d, PH_CONTAINERS, TY_CONNECTION, "bi", NULL, ms_buf_cstr(&a), NULL);

    /* databases */
    static const char *const dbs[][2] = {
        {"sales", "Orders, customers, payments and the product catalogue."},
        {"marketing", "Campaigns, ad spend, web tracking and email engagement."},
        {"analytics", "Modelled marts and reporting views built by dbt."},
    };
    for (size_t i = 0; i < 3; i++) {
        ms_buf_reset(&a);
        ms_buf_reset(&qn);
        ms_buf_printf(&qn, "warehouse/%s", dbs[i][0]);
        ms_buf_putc(&a, '{');
        astr(&a, "description", dbs[i][1]);
        astr(&a, "encoding", "UTF8");
        ms_buf_putc(&a, '}');
        upsert(d, PH_CONTAINERS, TY_DATABASE, ms_buf_cstr(&qn), "warehouse", ms_buf_cstr(&a), NULL);
    }

    /* schemas, in the order tables first name them */
    static const char *const schema_docs[][2] = {
        {"raw", "Landed as-is from the source systems by the ingestion connectors."},
        {"staging", "Typed, cleaned and de-duplicated copies of raw tables."},
        {"mart", "Facts and dimensions modelled for analysis."},
        {"reporting", "Views the BI tool reads."},
    };
    size_t ntables = sizeof demo_tables / sizeof demo_tables[0];
    for (size_t i = 0; i < ntables; i++) {
        const char *s = demo_tables[i].schema;
        if (i > 0 && strcmp(s, demo_tables[i - 1].schema) == 0) continue;
        const char *slash = strchr(s, '/');
        const char *doc = "";
        for (size_t k = 0; k < 4; k++)
            if (strcmp(slash + 1, schema_docs[k][0]) == 0) doc = schema_docs[k][1];
        ms_buf_reset(&a);
        ms_buf_reset(&qn);
        ms_buf_printf(&qn, "warehouse/%s", s);
        ms_buf parent = MS_BUF_INIT;
        ms_buf_printf(&parent, "warehouse/%.*s", (int)(slash - s), s);
        ms_buf_putc(&a, '{');
        astr(&a, "description", doc);
        ms_buf_putc(&a, '}');
        upsert(d, PH_CONTAINERS, TY_SCHEMA, ms_buf_cstr(&qn), ms_buf_cstr(&parent), ms_buf_cstr(&a),
               NULL);
        ms_buf_free(&parent);
    }

    /* tables and views, then their columns */
    for (size_t i = 0; i < ntables; i++) {
        const demo_table *t = &demo_tables[i];
        bool view = strcmp(t->type, "view") == 0;
        ms_buf_reset(&a);
        ms_buf_reset(&qn);
        ms_buf_printf(&qn, "warehouse/%s/%s", t->schema, t->name);
        ms_buf parent = MS_BUF_INIT;
        ms_buf_printf(&parent, "warehouse/%s", t->schema);
        ms_buf_putc(&a, '{');
        astr(&a, "description", t->description);
        astr(&a, "owner", t->owner);
        if (!view) aint(&a, "row_count", t->rows);
        if (view) astr(&a, "definition", view_sql(t->name));
        if (t->from) {
            ms_buf src = MS_BUF_INIT;
            full_qn(&src, t->from, strlen(t->from));
            astr(&a, "source", ms_buf_cstr(&src));
            ms_buf_free(&src);
        }
        ms_buf_putc(&a, '}');
        upsert(d, PH_ASSETS, view ? TY_VIEW : TY_TABLE, ms_buf_cstr(&qn), ms_buf_cstr(&parent),
               ms_buf_cstr(&a), NULL);
        int ordinal = 0;
        if (t->columns) {
            emit_columns(d, ms_buf_cstr(&qn), t->columns, &ordinal);
        } else {
            const demo_table *src = find_table(t->from);
            if (src && src->columns) emit_columns(d, ms_buf_cstr(&qn), src->columns, &ordinal);
            emit_columns(d, ms_buf_cstr(&qn), STAGING_AUDIT_COLUMNS, &ordinal);
        }
        ms_buf_free(&parent);
    }

    /* dashboards and their fields */
    static const char *const dashboards[][4] = {
        {"revenue-overview", "Revenue overview",
         "Daily and monthly revenue, orders, average order value and refunds by channel; the "
         "weekly business review dashboard.",
         "finance-analytics"},
        {"customer-health", "Customer health",
         "Active and at-risk customers, churn risk and lifetime value; used by CRM and support.",
         "customer-analytics"},
    };
    for (size_t i = 0; i < 2; i++) {
        ms_buf_reset(&a);
        ms_buf_reset(&qn);
        ms_buf_printf(&qn, "bi/%s", dashboards[i][0]);
        ms_buf_putc(&a, '{');
        astr(&a, "title", dashboards[i][1]);
        astr(&a, "description", dashboards[i][2]);
        astr(&a, "owner", dashboards[i][3]);
        ms_buf_printf(&a, ",\"url\":\"https://bi.internal.example.com/superset/dashboard/%s/\"",
                      dashboards[i][0]);
        ms_buf_putc(&a, '}');
        upsert(d, PH_ASSETS, TY_DASHBOARD, ms_buf_cstr(&qn), "bi", ms_buf_cstr(&a), NULL);
    }
    for (size_t i = 0; i < sizeof demo_fields / sizeof demo_fields[0]; i++) {
        const demo_field *f = &demo_fields[i];
        ms_buf parent = MS_BUF_INIT;
        ms_buf_printf(&parent, "bi/%s", f->dashboard);
        ms_buf_reset(&a);
        ms_buf_reset(&qn);
        ms_buf_printf(&qn, "bi/%s/%s", f->dashboard, f->name);
        ms_buf_putc(&a, '{');
        astr(&a, "data_type", f->data_type);
        astr(&a, "expression", f->expression);
        ms_buf_putc(&a, '}');
        upsert(d, PH_FIELDS, TY_BI_FIELD, ms_buf_cstr(&qn), ms_buf_cstr(&parent), ms_buf_cstr(&a),
               f->tags);
        ms_buf_free(&parent);
    }

    /* processes: one load job per staging table, then the mart builds and BI extracts */
    for (size_t i = 0; i < ntables; i++) {
        const demo_table *t = &demo_tables[i];
        if (!t->from) continue;
        char db[32];
        snprintf(db, sizeof db, "%.*s", (int)(strchr(t->schema, '/') - t->schema), t->schema);
        ms_buf_reset(&a);
        ms_buf_reset(&qn);
        ms_buf_printf(&qn, "warehouse/%s/etl/load_%s", db, t->name);
        ms_buf out = MS_BUF_INIT, desc = MS_BUF_INIT;
        ms_buf_printf(&out, "%s/%s", t->schema, t->name);
        ms_buf_printf(&desc, "Loads %s into %s/%s.", t->from, t->schema, t->name);
        ms_buf_putc(&a, '{');
        akey(&a, "inputs");
        put_qn_array(&a, t->from);
        akey(&a, "outputs");
        put_qn_array(&a, ms_buf_cstr(&out));
        astr(&a, "description", ms_buf_cstr(&desc));
        astr(&a, "engine", "airbyte");
        astr(&a, "schedule", "15 * * * *");
        ms_buf_putc(&a, '}');
        upsert(d, PH_PROCESSES, TY_PROCESS, ms_buf_cstr(&qn), NULL, ms_buf_cstr(&a), NULL);
        link_all(d, t->from, ms_buf_cstr(&out), ms_buf_cstr(&qn));
        ms_buf_free(&out);
        ms_buf_free(&desc);
    }
    for (size_t i = 0; i < sizeof demo_processes / sizeof demo_processes[0]; i++) {
        const demo_process *p = &demo_processes[i];
        ms_buf_reset(&a);
        ms_buf_putc(&a, '{');
        akey(&a, "inputs");
        put_qn_array(&a, p->inputs);
        akey(&a, "outputs");
        put_qn_array(&a, p->outputs);
        astr(&a, "description", p->description);
        astr(&a, "engine", p->engine);
        astr(&a, "schedule", p->schedule);
        ms_buf_putc(&a, '}');
        upsert(d, PH_PROCESSES, TY_PROCESS, p->qn, NULL, ms_buf_cstr(&a), NULL);
        link_all(d, p->inputs, p->outputs, p->qn);
    }
    for (size_t i = 0; i < sizeof demo_view_sources / sizeof demo_view_sources[0]; i++) {
        ms_buf_reset(&qn);
        ms_buf_printf(&qn, "analytics/reporting/%s", demo_view_sources[i][0]);
        link_all(d, demo_view_sources[i][1], ms_buf_cstr(&qn), NULL);
    }
    ms_buf_free(&a);
    ms_buf_free(&qn);
}

/* Generates the whole estate into d (initialised here; release with demo_free): one pass per
 * phase, so that event ids run in order through the phases (demo-1 … demo-N as printed). */
static void demo_build(demo *d)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < PH_COUNT; i++)
        ms_buf_init(&d->phase[i]);
    d->next_id = 1;
    for (d->pass = 0; d->pass < PH_COUNT; d->pass++)
        demo_emit(d);
}

/* Releases the phase buffers of d. */
static void demo_free(demo *d)
{
    for (int i = 0; i < PH_COUNT; i++)
        ms_buf_free(&d->phase[i]);
}

/* ---- posting --------------------------------------------------------------------------------- */

/* Prints the command's help to out. */
static void usage(FILE *out)
{
    fputs(
        "Usage: metasync demo [options]\n"
        "\n"
        "Loads a realistic sample estate into the running server: a PostgreSQL warehouse\n"
        "(databases sales, marketing, analytics; raw, staging, mart and reporting schemas; 50\n"
        "tables, 4 views, ~620 columns with PII/GDPR tags), a Superset BI tool with two\n"
        "dashboards and their fields, the ETL processes and the lineage links between them.\n"
        "Waits for the server's /readyz first. Content and event ids (demo-1, demo-2, ...) are\n"
        "deterministic: running it again reports duplicates and changes nothing. Prints what\n"
        "it loaded and ready-to-paste URLs to explore it.\n"
        "\n"
        "Options:\n"
        "  --print           write the events as NDJSON to stdout instead of posting them\n"
        "                    (e.g. `metasync demo --print > demo.ndjson; metasync ingest "
        "demo.ndjson`)\n"
        "  --wait SECONDS    how long to wait for /readyz, 0..3600 (default 30)\n"
        "  -h, --help        show this help\n"
        "\n"
        "Exit codes: 0 loaded (or printed); 1 some event rejected; 2 usage or configuration\n"
        "            error; 3 server unreachable, not ready in time, or 5xx.\n"
        "\n"
        "Configuration flags (e.g. --server URL, METASYNC_SERVER): see `metasync config --help`.\n",
        out);
}

/* Polls GET {server}/readyz until it answers 2xx or wait_s seconds pass. Returns MS_EXIT_OK,
 * MS_EXIT_USAGE (bad server URL) or MS_EXIT_UNREACHABLE (message printed). */
static int wait_ready(ms_http_xfer *x, const char *server, long wait_s)
{
    ms_buf url = MS_BUF_INIT;
    ms_http_url(&url, server, "/readyz");
    ms_http_req req = {.method = "GET", .url = ms_buf_cstr(&url), .timeout_ms = 5000};
    unsigned long long deadline = ms_cli_now_ms() + (unsigned long long)wait_s * 1000;
    bool said = false;
    ms_error err;
    int rc = MS_EXIT_UNREACHABLE;
    for (;;) {
        ms_error_clear(&err);
        ms_err e = ms_http_perform(x, &req, &err);
        if (e == MS_OK && x->resp.status >= 200 && x->resp.status < 300) {
            rc = MS_EXIT_OK;
            break;
        }
        if (e == MS_ERR_CONFIG) {
            fprintf(stderr, "metasync demo: %s\n", err.detail);
            rc = MS_EXIT_USAGE;
            break;
        }
        if (ms_cli_now_ms() >= deadline) {
            if (e != MS_OK)
                fprintf(stderr, "metasync demo: server not ready after %ld s: %s\n", wait_s,
                        err.detail);
            else
                fprintf(stderr,
                        "metasync demo: server not ready after %ld s: /readyz answered %ld\n",
                        wait_s, x->resp.status);
            break;
        }
        if (!said) {
            fprintf(stderr, "metasync demo: waiting for %s to be ready (up to %ld s)...\n",
                    ms_buf_cstr(&url), wait_s);
            said = true;
        }
        ms_cli_sleep_ms(250, NULL);
    }
    ms_buf_free(&url);
    return rc;
}

/* Rejections of one phase, reported by event id. */
typedef struct demo_rejects {
    long first_id; /* id number of the phase's first event */
    long shown;
} demo_rejects;

/* ms_reject_fn: prints the first 20 rejections as `demo-N: code: detail` on stderr. */
static void on_reject(void *ud, long index, long line, long column, const char *code,
                      const char *detail)
{
    (void)column;
    demo_rejects *r = ud;
    long k = line >= 1 ? line - 1 : index;
    if (r->shown++ >= 20) return;
    if (k >= 0)
        fprintf(stderr, "  demo-%ld: %s: %s\n", r->first_id + k, code, detail);
    else
        fprintf(stderr, "  (event ?): %s: %s\n", code, detail);
}

/* Totals over all phases. */
typedef struct demo_totals {
    int64_t accepted, duplicates, rejected, last_seq;
} demo_totals;

/* POSTs each phase of d in order; fills tot. Returns an exit code (message printed on failure). */
static int post_all(ms_http_xfer *x, const char *server, demo *d, demo_totals *tot)
{
    ms_buf url = MS_BUF_INIT;
    ms_http_url(&url, server, "/api/v1/events");
    ms_http_policy pol;
    ms_http_policy_default(&pol);
    int rc = MS_EXIT_OK;
    long shown = 0;
    tot->last_seq = -1;
    for (int ph = 0; ph < PH_COUNT && rc == MS_EXIT_OK; ph++) {
        if (d->nevents[ph] == 0) continue;
        ms_http_req req = {.method = "POST",
                           .url = ms_buf_cstr(&url),
                           .content_type = "application/x-ndjson",
                           .body = d->phase[ph].data,
                           .len = d->phase[ph].len,
                           .timeout_ms = 300000};
        ms_error err;
        ms_error_clear(&err);
        ms_err e = ms_http_perform_retry(x, &req, &pol, &err);
        long st = x->resp.status;
        if (e != MS_OK) {
            fprintf(stderr, "metasync demo: posting %s: %s\n", phase_names[ph], err.detail);
            rc = ms_cli_exit_for(e);
            break;
        }
        if (st < 200 || st >= 300) {
            char code[64], detail[400];
            ms_http_problem(&x->resp, code, sizeof code, detail, sizeof detail, NULL, NULL);
            fprintf(stderr, "metasync demo: posting %s: server answered %ld%s%s: %s\n",
                    phase_names[ph], st, code[0] ? " " : "", code, detail);
            rc = st >= 500 || st == 429 ? MS_EXIT_UNREACHABLE : MS_EXIT_REFUSED;
            break;
        }
        ms_ingest_reply rep;
        demo_rejects rj = {d->first_id[ph], shown};
        if (ms_http_parse_ingest_reply(x->resp.body.data, x->resp.body.len, &rep, on_reject, &rj,
                                       &err) != MS_OK) {
            fprintf(stderr, "metasync demo: posting %s: %s\n", phase_names[ph], err.detail);
            rc = MS_EXIT_UNREACHABLE;
            break;
        }
        shown = rj.shown;
        tot->accepted += rep.accepted;
        tot->duplicates += rep.duplicates;
        tot->rejected += rep.nrejected;
        if (rep.last_seq > tot->last_seq) tot->last_seq = rep.last_seq;
    }
    if (shown > 20) fprintf(stderr, "  ... and %ld more rejections\n", shown - 20);
    ms_buf_free(&url);
    return rc;
}

/* Prints what was loaded and where to look. */
static void report(const demo *d, const demo_totals *tot, const char *server)
{
    size_t n = strlen(server);
    while (n > 0 && server[n - 1] == '/')
        n--;
    long total = 0;
    for (int i = 0; i < PH_COUNT; i++)
        total += d->nevents[i];
    printf("Loaded the demo estate into %.*s: %ld events.\n\n", (int)n, server, total);
    for (int t = 0; t < TY_COUNT; t++)
        printf("  %-11s %5ld\n", type_names[t], d->types[t]);
    printf("  %-11s %5ld\n", "links", d->links);
    printf("  tags        %5ld PII, %ld GDPR\n\n", d->pii, d->gdpr);
    printf("Server answer: %" PRId64 " accepted, %" PRId64 " duplicates, %" PRId64 " rejected",
           tot->accepted, tot->duplicates, tot->rejected);
    if (tot->last_seq >= 0) printf(" (last_seq %" PRId64 ")", tot->last_seq);
    printf(".\n");
    if (tot->duplicates > 0 && tot->accepted == 0)
        printf("(Everything was already there: the demo is idempotent.)\n");
    const char *s = server;
    int sn = (int)n;
    printf("\nWhere to look:\n");
    printf("  an asset:           curl -s %.*s/api/v1/assets/warehouse/sales/raw/orders\n", sn, s);
    printf("  a column:           curl -s %.*s/api/v1/assets/warehouse/sales/raw/customers/email\n",
           sn, s);
    printf("  the same, pretty:   metasync get warehouse/analytics/mart/customer_360\n");
    printf("  search:             curl -s '%.*s/api/v1/assets?q=customer'\n", sn, s);
    printf("  lineage upstream:   curl -s '%.*s/api/v1/assets/warehouse/analytics/mart/"
           "customer_360/lineage?direction=upstream&depth=5'\n",
           sn, s);
    printf("  lineage downstream: curl -s '%.*s/api/v1/assets/warehouse/sales/raw/orders/"
           "lineage?direction=downstream&depth=5'\n",
           sn, s);
    printf("  PII-tagged assets:  curl -s '%.*s/api/v1/assets?tag=PII'\n", sn, s);
    printf("  change feed:        curl -s '%.*s/api/v1/changes?after=0&limit=20'\n", sn, s);
    printf("                      metasync changes --follow\n");
    printf("  metrics:            curl -s %.*s/metrics\n", sn, s);
}

/* Parses the command's own arguments. Returns MS_EXIT_OK or MS_EXIT_USAGE (message printed). */
static int parse_args(int nrest, char **rest, bool *print, int64_t *wait_s)
{
    *print = false;
    *wait_s = 30;
    for (int i = 0; i < nrest;) {
        const char *v = NULL;
        int m;
        if (strcmp(rest[i], "--print") == 0) {
            *print = true;
            i++;
        } else if ((m = ms_cli_opt("demo", nrest, rest, &i, "--wait", &v)) != 0) {
            if (m < 0 || !ms_cli_parse_i64("demo", "--wait", v, 0, 3600, wait_s))
                return MS_EXIT_USAGE;
        } else {
            fprintf(stderr, "metasync demo: unexpected argument %s (see --help)\n", rest[i]);
            return MS_EXIT_USAGE;
        }
    }
    return MS_EXIT_OK;
}

int ms_cmd_demo(int argc, char **argv, char **envp)
{
    if (ms_cli_wants_help(argc, argv)) {
        usage(stdout);
        return MS_EXIT_OK;
    }
    ms_config cfg;
    char **rest;
    int nrest;
    int rc = ms_cli_load_config("demo", &cfg, argc, argv, envp, &rest, &nrest);
    if (rc != MS_EXIT_OK) return rc;
    bool print;
    int64_t wait_s;
    rc = parse_args(nrest, rest, &print, &wait_s);
    free(rest);
    if (rc != MS_EXIT_OK) {
        ms_config_free(&cfg);
        return rc;
    }

    demo d;
    demo_build(&d);
    if (print) {
        for (int ph = 0; ph < PH_COUNT; ph++)
            fwrite(d.phase[ph].data, 1, d.phase[ph].len, stdout);
        if (fflush(stdout) != 0) rc = MS_EXIT_INTERNAL;
        demo_free(&d);
        ms_config_free(&cfg);
        return rc;
    }

    ms_error err;
    ms_error_clear(&err);
    if (ms_http_global_init(&err) != MS_OK) {
        fprintf(stderr, "metasync demo: %s\n", err.detail);
        demo_free(&d);
        ms_config_free(&cfg);
        return MS_EXIT_INTERNAL;
    }
    ms_http_xfer x;
    ms_http_xfer_init(&x, NULL);
    demo_totals tot = {0};
    rc = wait_ready(&x, cfg.server, (long)wait_s);
    if (rc == MS_EXIT_OK) rc = post_all(&x, cfg.server, &d, &tot);
    if (rc == MS_EXIT_OK) {
        report(&d, &tot, cfg.server);
        if (tot.rejected > 0) rc = MS_EXIT_REFUSED;
    }
    ms_http_xfer_free(&x);
    ms_http_global_cleanup();
    demo_free(&d);
    ms_config_free(&cfg);
    return rc;
}
